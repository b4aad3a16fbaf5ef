"""``/v1``: the simple API for apps and curl. POST /v1/classify with an image, get labels and scores."""

from __future__ import annotations

import time

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from serve.deps import ReadyService, require_api_key
from serve.errors import RequestError

router = APIRouter(prefix="/v1", tags=["v1"], dependencies=[Depends(require_api_key)])

_IMAGE_TYPES = ("image/", "application/octet-stream")
_BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": "One image as the raw body (image/jpeg, image/png, image/webp, image/bmp or "
        "application/octet-stream), or one or more images as multipart/form-data file parts (any field name).",
        "content": {
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                }
            },
        },
    }
}


class Prediction(BaseModel):
    labels: list[str] = Field(description="top-k class labels, best first")
    indices: list[int] = Field(description="their class indices")
    scores: list[float] = Field(description="softmax probabilities of those classes")


class ClassifyTiming(BaseModel):
    preprocess_ms: float = Field(description="decode + resize + normalise (all images, in parallel)")
    queue_ms: float = Field(description="wait for the dynamic batch (slowest image)")
    inference_ms: float = Field(description="runtime call of the batch (slowest image)")
    total_ms: float = Field(description="time inside the server for this request")
    batch_sizes: list[int] = Field(description="size of the batch each image ran in")


class ClassifyResponse(BaseModel):
    model: str
    artifact: str
    predictions: list[Prediction]
    timing: ClassifyTiming


class ModelInfo(BaseModel):
    name: str
    version: str
    artifact: str
    runtime: str
    device: str
    input_shape: list[int]
    labels: list[str]
    max_batch_size: int


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


async def _images(request: Request) -> list[bytes]:
    ctype = request.headers.get("content-type", "application/octet-stream").lower()
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=1024, max_fields=1024)
        try:
            images = [await v.read() for _, v in form.multi_items() if not isinstance(v, str)]
        finally:
            await form.close()
        if not images:
            raise RequestError("multipart body has no file parts; send images as files (e.g. curl -F file=@cat.jpg)")
        return images
    if not ctype.startswith(_IMAGE_TYPES):
        raise RequestError(
            f"unsupported Content-Type {ctype!r}: send image/* or application/octet-stream bytes, "
            "or multipart/form-data",
            status=415,
        )
    return [await request.body()]


@router.post(
    "/classify", response_model=ClassifyResponse, openapi_extra=_BODY_DOC, summary="Classify one or more images"
)
async def classify(
    request: Request,
    service: ReadyService,
    top_k: int = Query(5, ge=1, description="how many classes to return per image"),
) -> JSONResponse:
    t0 = time.perf_counter()
    k = len(service.labels)
    if top_k > k:
        raise RequestError(f"top_k={top_k} is more than the model's {k} classes")
    with service.arriving() as arrival:
        images = await _images(request)
        service.check_batch(len(images))
        x, pre_s = await service.preprocess(images)
        logits, timing = await service.infer(x, service.timeout_s(), arrival)
    t1 = time.perf_counter()
    probs = _softmax(logits.astype(np.float64))
    preds = []
    for row in probs:
        idx = np.argsort(-row, kind="stable")[:top_k]
        preds.append({"labels": [service.labels[i] for i in idx], "indices": idx.tolist(), "scores": row[idx].tolist()})
    done = time.perf_counter()
    service.stats.record_request(
        ok=True, total_s=done - t0, queue_s=timing.queue_ms / 1000, input_s=pre_s, output_s=done - t1
    )
    # Built as plain JSON (the response_model above documents it): skips a second validation pass per request.
    return JSONResponse(
        {
            "model": service.model_name,
            "artifact": service.selection.artifact.name,
            "predictions": preds,
            "timing": {
                "preprocess_ms": 1000 * pre_s,
                "queue_ms": timing.queue_ms,
                "inference_ms": timing.inference_ms,
                "total_ms": 1000 * (done - t0),
                "batch_sizes": list(timing.batch_sizes),
            },
        }
    )


@router.get("/model", response_model=ModelInfo, summary="What is served: model, artifact, runtime, input, labels")
async def model_info(service: ReadyService) -> ModelInfo:
    sel = service.selection
    return ModelInfo(
        name=service.model_name,
        version=service.version,
        artifact=sel.artifact.name,
        runtime=sel.runtime.name,
        device=sel.device,
        input_shape=list(service.input_shape),
        labels=service.labels,
        max_batch_size=service.max_batch,
    )

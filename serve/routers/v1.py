"""``/v1``: the simple API for apps, curl and the browser page. POST /v1/classify with an image, get labels,
scores and where the time went (``timing`` in the body, the same split in the ``Server-Timing`` header).

``/v1/classify`` is a plain Starlette route (see serve/openapi.py for why and how it is still documented):
the API key, readiness and ``top_k`` are checked here, in that order, as on the dependency-injected routes.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from serve.deps import ReadyService, check_api_key, ready_service_of, requests_in_flight, require_api_key
from serve.errors import RequestError
from serve.openapi import LeanRoutes
from serve.procinfo import peak_rss_bytes
from serve.timing import RequestTiming

router = APIRouter(prefix="/v1", tags=["v1"], dependencies=[Depends(require_api_key)])
lean = LeanRoutes(tags=["v1"])

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
    """Where the request's time went (serve/timing.py); the Server-Timing header carries the same split."""

    decode_ms: float = Field(description="image bytes -> pixels (summed over the request's images)")
    preprocess_ms: float = Field(description="resize, crop, normalise (summed over the request's images)")
    queue_ms: float = Field(description="wait for a batch slot (slowest image)")
    compute_ms: float = Field(description="runtime call of the batch (slowest image)")
    encode_ms: float = Field(description="softmax, top-k and building the answer")
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
    gate_accuracy: float | None = Field(
        description="the artifact's top-1 accuracy on the export gate's held-out images (worst batch size)"
    )
    threads: int = Field(description="runtime threads of this worker process")
    cpus: int = Field(description="CPUs this process may run on")
    cold_start_s: float | None = Field(description="this process: start -> model loaded, warm and ready")
    peak_rss_bytes: int = Field(description="this process's peak resident memory so far")


def _top_k(query: str | None, classes: int) -> int:
    if query is None:
        return min(5, classes)
    try:
        k = int(query)
    except ValueError:
        raise RequestError(f"invalid request: query.top_k: must be an integer, got {query[:40]!r}") from None
    if k < 1:
        raise RequestError(f"invalid request: query.top_k: must be >= 1, got {k}")
    if k > classes:
        raise RequestError(f"top_k={k} is more than the model's {classes} classes")
    return k


def _predictions(logits: np.ndarray, k: int, labels: list[str]) -> list[dict]:
    """(B, K) logits -> per image the top-k labels, indices and softmax scores, best first."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(axis=1, keepdims=True)
    idx = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    scores = probs[np.arange(len(probs))[:, None], idx].tolist()
    return [
        {"labels": [labels[i] for i in row], "indices": row, "scores": sc}
        for row, sc in zip(idx.tolist(), scores, strict=True)
    ]


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


async def classify(request: Request) -> Response:
    """Classify one or more images; answers top-k labels and scores per image, and the timing split."""
    timing = RequestTiming.of_request(request.scope)
    check_api_key(request)
    service = ready_service_of(request)
    k = _top_k(request.query_params.get("top_k"), len(service.labels))
    with service.arriving() as arrival:
        images = await _images(request)
        service.check_batch(len(images))
        x = await service.preprocess(images, timing)
        logits = await service.infer(x, service.timeout_s(), timing, arrival, requests_in_flight(request))
    t0 = time.perf_counter()
    preds = _predictions(logits, k, service.labels)
    timing.encode = time.perf_counter() - t0
    timing.finish()
    body = {
        "model": service.model_name,
        "artifact": service.selection.artifact.name,
        "predictions": preds,
        "timing": {**timing.ms(), "batch_sizes": list(timing.batch_sizes)},
    }
    service.answered(timing)
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        media_type="application/json",
        headers={"Server-Timing": timing.header()},
    )


lean.post(
    "/v1/classify",
    classify,
    response_model=ClassifyResponse,
    summary="Classify one or more images",
    openapi_extra={
        **_BODY_DOC,
        "parameters": [
            {
                "name": "top_k",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "default": 5},
                "description": "how many classes to return per image (at most the model's class count)",
            }
        ],
    },
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
        gate_accuracy=(sel.artifact.gate.get("worst") or {}).get("accuracy"),
        threads=service.threads,
        cpus=len(os.sched_getaffinity(0)),
        cold_start_s=service.cold_start_s,
        peak_rss_bytes=peak_rss_bytes(),
    )

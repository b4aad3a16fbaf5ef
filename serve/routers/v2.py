"""``/v2``: the KServe v2 / Open Inference Protocol subset that tritonclient, perf_analyzer and KServe speak.

Every model route also answers under ``/v2/models/{model}/versions/{version}/...``. The infer route reads
the raw body itself (the binary tensor extension sends JSON + bytes with no JSON content type, possibly
gzip/deflate-compressed) and accepts either an FP32 tensor [B, C, H, W] or encoded images as BYTES [B] or
[B, 1], which are preprocessed here from the bundle's own spec. It is a plain Starlette route (see
serve/openapi.py); its answer carries the timing split (serve/timing.py) in the response ``parameters`` and
in the ``Server-Timing`` header.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from serve.deps import (
    ReadyService,
    Service,
    check_api_key,
    ready_service_of,
    requests_in_flight,
    require_api_key,
)
from serve.errors import RequestError
from serve.openapi import LeanRoutes
from serve.service import InferenceService
from serve.timing import RequestTiming
from serve.v2.codec import (
    InferRequest,
    OutputRequest,
    decompress,
    encode_infer_response,
    parse_infer_request,
    serialize_bytes,
)
from tinymim import __version__

EXTENSIONS = ["binary_tensor_data", "classification", "model_configuration", "statistics"]
OUTPUT = "logits"

health = APIRouter(prefix="/v2/health", tags=["v2 health"])
router = APIRouter(prefix="/v2", tags=["v2"], dependencies=[Depends(require_api_key)])
lean = LeanRoutes(tags=["v2"])


@health.get("/live", summary="Liveness: 200 while the process runs")
async def live() -> dict[str, bool]:
    return {"live": True}


@health.get("/ready", summary="Readiness: 200 once the model is loaded and warm, else 503")
async def ready(service: Service) -> Response:
    if not service.ready:
        return JSONResponse({"error": "model is not ready"}, status_code=503, headers={"Retry-After": "1"})
    return JSONResponse({"ready": True})


@router.get("", summary="Server metadata")
async def server_metadata() -> dict[str, Any]:
    return {"name": "tinymim", "version": __version__, "extensions": EXTENSIONS}


def _model(service: InferenceService, model: str, version: str | None) -> InferenceService:
    if model != service.model_name:
        raise RequestError(f"unknown model {model!r}; this server serves {service.model_name!r}", status=404)
    if version not in (None, "", service.version):
        raise RequestError(f"model {model!r} has no version {version!r}; it has version {service.version}", status=404)
    return service


def _route(path: str, methods: list[str], summary: str):
    """Register a handler under /models/{model}<path> and /models/{model}/versions/{version}<path>."""

    def deco(fn):
        router.add_api_route("/models/{model}" + path, fn, methods=methods, summary=summary)
        router.add_api_route(
            "/models/{model}/versions/{version}" + path,
            fn,
            methods=methods,
            summary=summary + " (version given)",
            include_in_schema=False,
        )
        return fn

    return deco


@_route("", ["GET"], "Model metadata")
async def model_metadata(model: str, service: ReadyService, version: str | None = None) -> dict[str, Any]:
    s = _model(service, model, version)
    c, h, w = s.input_shape
    return {
        "name": s.model_name,
        "versions": [s.version],
        "platform": _platform(s),
        "inputs": [{"name": s.bundle.input.name, "datatype": "FP32", "shape": [-1, c, h, w]}],
        "outputs": [{"name": s.bundle.output.name, "datatype": "FP32", "shape": [-1, len(s.labels)]}],
    }


@_route("/ready", ["GET"], "Model readiness")
async def model_ready(model: str, service: Service, version: str | None = None) -> Response:
    if service.ready:
        _model(service, model, version)
    else:
        return JSONResponse({"error": "model is not ready"}, status_code=503, headers={"Retry-After": "1"})
    return JSONResponse({"name": service.model_name, "ready": True})


def _platform(s: InferenceService) -> str:
    return "tensorrt_plan" if s.selection.artifact.runtime == "tensorrt" else "onnxruntime_onnx"


@_route("/config", ["GET"], "Model configuration (Triton layout, as perf_analyzer reads it)")
async def model_config(model: str, service: ReadyService, version: str | None = None) -> dict[str, Any]:
    s = _model(service, model, version)
    c, h, w = s.input_shape
    sizes = [b for b in (1, 2, 4, 8, 16, 32, 64, 128) if b < s.max_batch] + [s.max_batch]
    return {
        "name": s.model_name,
        "platform": _platform(s),
        "backend": "tensorrt" if _platform(s) == "tensorrt_plan" else "onnxruntime",
        "max_batch_size": s.max_batch,
        "input": [{"name": s.bundle.input.name, "data_type": "TYPE_FP32", "format": "FORMAT_NCHW", "dims": [c, h, w]}],
        "output": [{"name": s.bundle.output.name, "data_type": "TYPE_FP32", "dims": [len(s.labels)]}],
        "dynamic_batching": {
            "preferred_batch_size": sizes,
            "max_queue_delay_microseconds": int(s.settings.max_queue_delay_ms * 1000),
        },
        "instance_group": [
            {"name": s.model_name, "count": 1, "kind": "KIND_GPU" if s.selection.device == "cuda" else "KIND_CPU"}
        ],
        "parameters": {"artifact": {"string_value": s.selection.artifact.name}},
    }


@_route("/stats", ["GET"], "Model statistics")
async def model_stats(model: str, service: ReadyService, version: str | None = None) -> dict[str, Any]:
    s = _model(service, model, version)
    return {"model_stats": [s.stats.to_dict()]}


def _timeout_s(req: InferRequest) -> float | None:
    t = req.parameters.get("timeout")
    if t is None:
        return None
    if isinstance(t, bool) or not isinstance(t, int) or t <= 0:
        raise RequestError(f"parameters.timeout must be a positive integer of microseconds, got {t!r}")
    return t / 1e6


async def _input_batch(s: InferenceService, req: InferRequest, timing: RequestTiming) -> np.ndarray:
    if len(req.inputs) != 1:
        raise RequestError(f"the model takes exactly one input ({s.bundle.input.name!r}); got {len(req.inputs)}")
    t = req.inputs[0]
    if t.name != s.bundle.input.name:
        raise RequestError(f"unknown input {t.name!r}; the model's input is {s.bundle.input.name!r}")
    if t.datatype == "BYTES":
        if not (len(t.shape) == 1 or (len(t.shape) == 2 and t.shape[1] == 1)):
            raise RequestError(f"BYTES input (encoded images) must have shape [B] or [B,1], got {t.shape}")
        s.check_batch(len(t.elements))
        return await s.preprocess(t.elements, timing)
    if t.datatype != "FP32":
        raise RequestError(f"input {t.name!r} must be FP32 [B,C,H,W] or BYTES images, got datatype {t.datatype}")
    s.check_tensor(t.array)
    return np.ascontiguousarray(t.array, dtype=np.float32)


def _outputs(s: InferenceService, req: InferRequest, logits: np.ndarray) -> tuple[list[dict], list[bytes]]:
    default_binary = req.parameters.get("binary_data_output") is True
    wanted = req.outputs
    if wanted is None:
        wanted = [OutputRequest(OUTPUT, default_binary, 0)]
    outs, blobs = [], []
    for o in wanted:
        if o.name != s.bundle.output.name:
            raise RequestError(f"unknown output {o.name!r}; the model's output is {s.bundle.output.name!r}")
        binary = o.binary or default_binary
        if o.classification:
            k = min(o.classification, logits.shape[1])
            idx = np.argsort(-logits, axis=1, kind="stable")[:, :k]
            elements = [f"{logits[b, i]:f}:{i}:{s.labels[i]}" for b in range(len(logits)) for i in idx[b]]
            out = {"name": o.name, "datatype": "BYTES", "shape": [len(logits), k]}
            if binary:
                blob = serialize_bytes([e.encode() for e in elements])
                out["parameters"] = {"binary_data_size": len(blob)}
                blobs.append(blob)
            else:
                out["data"] = elements
        else:
            out = {"name": o.name, "datatype": "FP32", "shape": list(logits.shape)}
            if binary:
                blob = np.ascontiguousarray(logits, dtype="<f4").tobytes()
                out["parameters"] = {"binary_data_size": len(blob)}
                blobs.append(blob)
            else:
                out["data"] = logits.astype(np.float32).ravel().tolist()
        outs.append(out)
    return outs, blobs


async def infer(request: Request) -> Response:
    """Inference (JSON or binary tensor extension; gzip/deflate bodies)."""
    timing = RequestTiming.of_request(request.scope)
    check_api_key(request)
    params = request.path_params
    s = _model(ready_service_of(request), params["model"], params.get("version"))
    ok = False
    try:
        with s.arriving() as arrival:
            raw = await request.body()  # bounded by RequestGuard's streaming limit
            body = decompress(raw, request.headers.get("content-encoding"), s.settings.max_body_bytes)
            req = parse_infer_request(body, request.headers.get("inference-header-content-length"))
            timeout = _timeout_s(req)
            x = await _input_batch(s, req, timing)
            logits = await s.infer(x, s.timeout_s(timeout), timing, arrival, requests_in_flight(request))
        t0 = time.perf_counter()
        outputs, blobs = _outputs(s, req, logits)
        timing.encode = time.perf_counter() - t0
        timing.finish()
        header: dict[str, Any] = {
            "model_name": s.model_name,
            "model_version": s.version,
            "parameters": timing.parameters(),
            "outputs": outputs,
        }
        if req.id is not None:
            header["id"] = req.id
        content, headers = encode_infer_response(header, blobs)
        s.answered(timing)
        ok = True
        return Response(content=content, headers={**headers, "Server-Timing": timing.header()})
    finally:
        if not ok:
            s.stats.record_request(ok=False, total_s=time.perf_counter() - timing.start)


for _path in ("/v2/models/{model}/infer", "/v2/models/{model}/versions/{version}/infer"):
    lean.post(
        _path,
        infer,
        documented=_path.endswith("{model}/infer"),
        summary="Inference (JSON or binary tensor extension; gzip/deflate bodies)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "KServe v2 inference request: JSON, or a JSON header followed by binary tensors "
                "(Inference-Header-Content-Length); inputs as FP32 [B,C,H,W] or encoded images as BYTES [B]",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )

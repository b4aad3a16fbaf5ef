"""``create_app(settings)``: the FastAPI application serving one bundle.

The lifespan loads and warms the model before the server accepts traffic, and on shutdown (SIGTERM: uvicorn
first stops accepting and finishes in-flight requests) drains the batcher and releases the runtime.
Errors all answer ``{"error": message}``: RequestError/ImageError with their own status, framework errors
(404 route, 405 method, 422 validation -> 400) likewise; anything unexpected is logged with its traceback by
:class:`serve.middleware.RequestGuard` and answered with a generic 500.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve import openapi
from serve.batcher import InferenceFailed
from serve.errors import ImageError, RequestError
from serve.metrics import ServiceMetrics
from serve.middleware import RequestGuard
from serve.routers import metrics as metrics_router
from serve.routers import page, v1, v2
from serve.service import InferenceService
from serve.settings import ServeSettings, load_settings

log = logging.getLogger(__name__)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def _request_error(_: Request, err: RequestError) -> JSONResponse:
        return _error(err.status, str(err), err.headers)

    @app.exception_handler(ImageError)
    async def _image_error(_: Request, err: ImageError) -> JSONResponse:
        return _error(err.status, str(err))

    @app.exception_handler(InferenceFailed)
    async def _inference_failed(_: Request, err: InferenceFailed) -> JSONResponse:
        return _error(500, "internal server error")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, err: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()[:5]]
        return _error(400, "invalid request: " + "; ".join(parts))


def create_app(settings: ServeSettings) -> FastAPI:
    """The app for ``settings.bundle``; the model loads when the app's lifespan starts (uvicorn, TestClient)."""
    metrics = ServiceMetrics(max_batch=settings.max_batch_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service: InferenceService = app.state.service
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="tinymim classification service",
        description="Image classification with a distilled ViT: a simple /v1 API and the KServe v2 / Open "
        "Inference Protocol (tritonclient, perf_analyzer, KServe clients work unchanged).",
        lifespan=lifespan,
    )
    app.state.service = InferenceService(settings, metrics)
    app.state.settings = settings
    _install_error_handlers(app)
    openapi.install(app, v1.lean, v2.lean)
    app.include_router(v1.router)
    app.include_router(v2.health)
    app.include_router(v2.router)
    app.include_router(metrics_router.router)
    app.include_router(page.router)
    app.mount("/ui", page.assets(), name="ui")
    app.add_middleware(RequestGuard, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    return app


def app_from_environment() -> FastAPI:
    """The app of one worker process of ``tinymim serve --workers N``: settings from ``TINYMIM_*`` variables."""
    settings = load_settings()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("serve").setLevel(settings.log_level.upper())
    return create_app(settings)

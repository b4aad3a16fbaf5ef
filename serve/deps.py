"""Typed FastAPI dependencies shared by the routers: the service, readiness, the API key.

All are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a worker thread, which would add
three thread hand-offs (and wake-ups) to every request. The inference routes (plain Starlette routes, see
serve/openapi.py) call the same checks directly: :func:`check_api_key`, :func:`ready_service_of`.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from serve.errors import RequestError
from serve.service import InferenceService

REQUESTS_IN_FLIGHT = "tinymim.requests_in_flight"  # ASGI scope key set by serve/http.py's protocol


def requests_in_flight(request: Request) -> int | None:
    """Requests the HTTP server has received and not yet answered, this one included (None: it cannot say)."""
    tasks = request.scope.get(REQUESTS_IN_FLIGHT)
    return None if tasks is None else len(tasks)


def service_of(request: Request) -> InferenceService:
    return request.app.state.service


def ready_service_of(request: Request) -> InferenceService:
    """The service, or 503 + Retry-After while it loads, warms up or shuts down."""
    service: InferenceService = request.app.state.service
    if not service.ready:
        raise RequestError(
            "model is not ready (loading, warming up or shutting down)", status=503, headers={"Retry-After": "1"}
        )
    return service


def check_api_key(request: Request) -> None:
    """With an API key configured: 'Authorization: Bearer KEY' or 'X-API-Key: KEY', compared in constant time."""
    key = request.app.state.service.settings.api_key
    if key is None:
        return
    given = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if given is None and auth[:7].lower() == "bearer ":
        given = auth[7:].strip()
    if given is None or not hmac.compare_digest(given.encode(), key.get_secret_value().encode()):
        raise RequestError(
            "missing or wrong API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )


async def get_service(request: Request) -> InferenceService:
    return service_of(request)


Service = Annotated[InferenceService, Depends(get_service)]


async def ready_service(request: Request) -> InferenceService:
    return ready_service_of(request)


ReadyService = Annotated[InferenceService, Depends(ready_service)]


async def require_api_key(request: Request) -> None:
    check_api_key(request)

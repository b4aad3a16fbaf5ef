"""Inference routes served as plain Starlette routes, documented in the OpenAPI schema like every other route.

FastAPI's per-route machinery (dependency solving, parameter validation, response-model handling) costs
about 70 microseconds per request on the 2-core machine this is developed on, a tenth of the per-request
budget of a 28-pixel model (see BENCHMARKS.md). The inference routes do not need it: their bodies are
parsed by our own codecs, their few checks are plain function calls (serve/deps.py). :class:`LeanRoutes`
registers each such endpoint twice: as a Starlette ``Route`` that serves it, and as a FastAPI route in a
router that is never mounted, from which :func:`install` takes its documentation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import Route


class _Route(Route):
    """A Starlette route that names itself in the scope (``scope["route"]``) as FastAPI's routes do, so the
    metrics label requests by route template."""

    def matches(self, scope: Any) -> tuple[Any, Any]:
        match, child = super().matches(scope)
        if child:
            child["route"] = self
        return match, child


class LeanRoutes:
    """Starlette routes that serve (``routes``) and the FastAPI routes that document them (``docs``)."""

    def __init__(self, tags: list[str]) -> None:
        self.routes: list[Route] = []
        self.docs = APIRouter(tags=tags)

    def post(self, path: str, endpoint: Callable, *, documented: bool = True, **doc: Any) -> None:
        """Serve ``endpoint(request) -> Response`` at POST ``path``; ``doc``: FastAPI route documentation."""
        self.routes.append(_Route(path, endpoint, methods=["POST"]))
        self.docs.add_api_route(path, endpoint, methods=["POST"], include_in_schema=documented, **doc)


def install(app: FastAPI, *lean: LeanRoutes) -> None:
    """Serve the lean routes in ``app`` and add their documentation to its OpenAPI schema."""
    for group in lean:
        app.router.routes.extend(group.routes)
    documented = [r for group in lean for r in group.docs.routes]

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=[*app.routes, *documented],
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

"""``GET /``: a small browser page to try the model: drop or pick an image, see the top-k, the timing split and
a latency history. Plain HTML, CSS and JavaScript shipped in serve/static/ (no build step, nothing fetched from
anywhere but this server); the page calls the same ``/v1`` routes as any client.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["page"])


@router.get("/", summary="Browser page: classify an image, see where the time went", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


def assets() -> StaticFiles:
    """The page's script and style sheet, mounted at /ui."""
    return StaticFiles(directory=STATIC)

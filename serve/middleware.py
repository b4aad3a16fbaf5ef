"""ASGI middleware around every request: body-size limit, per-route metrics, and the last-resort 500.

Body limit: a declared Content-Length above the limit is answered 413 before any byte is read; otherwise the
bytes actually received are counted as they stream in (chunked bodies included) and reading stops with 413
as soon as the count passes the limit, so no request can make the server buffer more than the limit.

Unexpected exceptions are logged here with their traceback and answered with a generic 500 that names
nothing internal. The request's arrival time is left in the scope (``serve.timing.SCOPE_START``) for the routes' timing.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from serve.errors import RequestError
from serve.metrics import ServiceMetrics
from serve.timing import SCOPE_START

log = logging.getLogger(__name__)


class BodyTooLarge(RequestError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than the {limit}-byte limit", status=413)


async def _send_json(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    def __init__(self, app: Any, *, metrics: ServiceMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.limit = max_body_bytes
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # label lookups once per route/status

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = scope[SCOPE_START] = time.perf_counter()
        state = {"status": 500, "started": False}

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
            await send(message)

        try:
            declared = self._content_length(scope)
            if declared is not None and declared > self.limit:
                await _send_json(
                    send_wrapper, 413, f"request body of {declared} bytes is larger than the {self.limit}-byte limit"
                )
                return
            if declared == -1:
                await _send_json(send_wrapper, 400, "invalid Content-Length header")
                return
            await self.app(scope, self._counting(receive), send_wrapper)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not state["started"]:
                await _send_json(send_wrapper, 500, "internal server error")
        finally:
            label = getattr(scope.get("route"), "path", None) or "unmatched"
            key = (label, scope.get("method", ""), state["status"])
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (
                    self.metrics.requests.labels(label, key[1], str(key[2])),
                    self.metrics.request_seconds.labels(label),
                )
            children[0].inc()
            children[1].observe(time.perf_counter() - t0)

    @staticmethod
    def _content_length(scope: dict) -> int | None:
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    return -1
                return n if n >= 0 else -1
        return None

    def _counting(self, receive: Any) -> Any:
        seen = 0

        async def wrapped() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        return wrapped

"""uvicorn's httptools HTTP/1.1 protocol, handing each response to the socket in one write.

uvicorn writes a response's status line and headers when the app sends ``http.response.start`` and the body
when it sends ``http.response.body``: two ``send`` system calls and two TCP segments for every small answer.
On loopback or a LAN each segment costs the sender the receiver's TCP processing too; in the profile of
``tinymim serve`` at 16 connections (docs/SERVING.md, "Where the time goes") the two writes were the largest
single item of the event loop. :class:`CoalescingTransport` keeps the writes of a response and passes them
on as one when the response is complete (or, for anything else written, at the next turn of the event loop),
so an answer leaves in one segment.

It also tells the app how many requests this server has received and not yet answered: uvicorn's own set of
request tasks, under ``REQUESTS_IN_FLIGHT`` in the ASGI scope (read by ``serve.deps.requests_in_flight``); the
batcher runs a request at once when it is the only one (serve/batcher.py). Everything else is uvicorn's own
protocol, unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serve.deps import REQUESTS_IN_FLIGHT


class CoalescingTransport:
    """An asyncio transport whose writes are joined until :meth:`flush` (called at most one loop turn later)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)  # anything not flushed by a complete response goes out next turn
        self._pending.append(data)

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(d) for d in self._pending)

    def __getattr__(self, name: str) -> Any:  # is_closing, pause_reading, get_extra_info, abort, ...
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's HttpToolsProtocol over a :class:`CoalescingTransport` (``uvicorn.Config(http=HttpProtocol)``)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[REQUESTS_IN_FLIGHT] = self.tasks  # type: ignore[literal-required]

    def on_response_complete(self) -> None:
        self.transport.flush()  # type: ignore[attr-defined]
        super().on_response_complete()

"""serve/http.py: a response's writes leave in one piece; order and completeness are kept (real transports)."""

from __future__ import annotations

import asyncio
import socket

from serve.http import CoalescingTransport


def _recv_now(sock: socket.socket) -> bytes:
    try:
        return sock.recv(1 << 16)
    except BlockingIOError:
        return b""


def test_writes_are_joined_until_flush_or_the_next_loop_turn():
    async def main() -> list[bytes]:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        t = CoalescingTransport(transport, loop)
        seen = []
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(b"body")
        assert t.get_write_buffer_size() >= 23
        seen.append(_recv_now(theirs))  # nothing on the wire yet
        t.flush()
        await asyncio.sleep(0.05)
        seen.append(_recv_now(theirs))  # both writes, in order, at once
        t.write(b"later")  # not flushed by anyone: the next loop turn sends it
        await asyncio.sleep(0.05)
        seen.append(_recv_now(theirs))
        t.write(b"last words")
        t.close()  # close sends what is pending first
        await asyncio.sleep(0.05)
        seen.append(_recv_now(theirs))
        assert t.is_closing()
        theirs.close()
        return seen

    assert asyncio.run(main()) == [b"", b"HTTP/1.1 200 OK\r\n\r\nbody", b"later", b"last words"]

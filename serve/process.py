"""``tinymim serve`` as a child process on loopback: start, wait for readiness, stop with SIGTERM.

What the quickstart, the serving benchmark and the live tests all need: the real server, started exactly as
a user starts it, and stopped the way an orchestrator stops it (SIGTERM -> drain -> exit 0).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from serve.errors import ServeError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A running ``tinymim serve BUNDLE --host 127.0.0.1 --port PORT ARGS``; its output goes to ``log_path``."""

    def __init__(
        self,
        bundle: str | Path,
        *args: str,
        log_path: str | Path,
        port: int = 0,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        cmd = [
            sys.executable,
            "-m",
            "tinymim_cli",
            "serve",
            str(bundle),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *args,
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env={**os.environ, **(env or {})}
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120.0, poll_s: float = 0.1) -> ServerProcess:
        """Return once /v2/health/ready answers 200; raise ServeError (with the log) if it exits or times out."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServeError(
                    f"the server exited with code {self.proc.returncode}; log {self.log_path}:\n{self.log()[-2000:]}"
                )
            try:
                if httpx.get(self.url + "/v2/health/ready", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(poll_s)
        self.stop()
        raise ServeError(f"the server was not ready after {timeout:.0f} s; log {self.log_path}:\n{self.log()[-2000:]}")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (graceful drain), then SIGKILL after ``timeout`` s; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

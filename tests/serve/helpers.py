"""Shared helpers for the serve tests: images, free ports, a real `tinymim serve` subprocess."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def image_bytes(seed: int, size: tuple[int, int] = (40, 30), fmt: str = "PNG", mode: str = "RGB") -> bytes:
    """A deterministic, structured random image (different seeds -> clearly different content)."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    arr = np.kron(base, np.ones((4, 4, 1), np.uint8))[:h, :w]
    img = Image.fromarray(arr, "RGB").convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProc:
    proc: subprocess.Popen
    port: int
    log_path: Path
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def start_server(bundle: Path, log_dir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 90) -> ServerProc:
    """`tinymim serve BUNDLE --port FREE ARGS` as a subprocess; returns once /v2/health/ready is 200."""
    port = free_port()
    log_path = log_dir / f"server-{port}.log"
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "TINYMIM_THREADS": "1", "TINYMIM_PREPROCESS_WORKERS": "2", **(env or {})}
    cmd = [sys.executable, "-m", "tinymim.cli", "serve", str(bundle), "--port", str(port), *args]
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=full_env, cwd=REPO)
    server = ServerProc(proc, port, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.url + "/v2/health/ready", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server not ready after {timeout} s:\n{server.log()}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")

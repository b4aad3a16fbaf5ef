"""Shared helpers for the serve tests: images, free ports, a real `tinymim serve` subprocess."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from serve.process import ServerProcess, free_port

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


ServerProc = ServerProcess


def start_server(
    bundle: Path, log_dir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 90
) -> ServerProc:
    """`tinymim serve BUNDLE --port FREE ARGS` as a subprocess (one thread each); returns once ready.

    ``env`` adds variables; a value of None leaves that variable unset (e.g. the default TINYMIM_THREADS=1)."""
    port = free_port()
    env = {"OMP_NUM_THREADS": "1", "TINYMIM_THREADS": "1", "TINYMIM_PREPROCESS_WORKERS": "2", **(env or {})}
    env = {k: v for k, v in env.items() if v is not None}  # None: leave the variable unset
    server = ServerProcess(bundle, *args, log_path=log_dir / f"server-{port}.log", port=port, env=env, cwd=REPO)
    return server.wait_ready(timeout)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out

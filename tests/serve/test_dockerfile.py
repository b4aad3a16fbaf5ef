"""Static checks of the Dockerfile (no Docker engine runs here): targets, user, health check, entry point."""

from __future__ import annotations

import re

from tests.serve.helpers import REPO


def _stages(text: str) -> dict[str, str]:
    parts = re.split(r"^FROM\s+", text, flags=re.M)[1:]
    return {re.search(r"\bAS\s+(\S+)", p.splitlines()[0], re.I).group(1): p for p in parts}


def test_default_target_is_small_cpu_image_and_gpu_target_exists():
    text = (REPO / "Dockerfile").read_text()
    stages = _stages(text)
    assert list(stages)[-1] == "cpu"  # the last stage is what `docker build .` produces
    assert "gpu" in stages and stages["gpu"].startswith("${TENSORRT_IMAGE}")
    assert re.search(r"^ARG TENSORRT_IMAGE=nvcr.io/nvidia/tensorrt:", text, re.M)
    for name in ("cpu", "gpu"):
        s = stages[name]
        assert re.search(r"^USER\s+(?!root)\S+", s, re.M), name
        assert "EXPOSE 8000" in s and "/v2/health/ready" in s and "HEALTHCHECK" in s
        assert 'ENTRYPOINT ["tinymim", "serve"]' in s
        assert "TINYMIM_HOST=0.0.0.0" in s
    assert "[serve]" in stages["venv"] and "torch" not in stages["venv"] + stages["cpu"]


def test_dockerignore_keeps_the_context_small():
    lines = [
        ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*" and "!serve/" in lines and "!tinymim/" in lines and "!pyproject.toml" in lines
    assert not any(ln.startswith("!") and ("runs" in ln or ".venv" in ln) for ln in lines)

"""Static checks of the Dockerfile (no Docker engine runs here): targets, user, health check, entry point."""

from __future__ import annotations

import re

import pytest

from tests.serve.helpers import REPO


def _stages(text: str) -> dict[str, str]:
    parts = re.split(r"^FROM\s+", text, flags=re.M)[1:]
    return {re.search(r"\bAS\s+(\S+)", p.splitlines()[0], re.I).group(1): p for p in parts}


def test_default_target_is_small_cpu_image_and_gpu_target_exists():
    text = (REPO / "Dockerfile").read_text()
    stages = _stages(text)
    assert list(stages)[-1] == "cpu"  # the last stage is what `docker build .` produces
    assert "gpu" in stages and stages["gpu"].startswith("python:${PYTHON_VERSION}-slim")
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
    assert lines[0] == "*" and "!pyproject.toml" in lines
    assert {"!serve/", "!tinymim/", "!tinymim_cli/"} <= set(lines)  # the ground, the room and the CLI
    assert not any(ln.startswith("!") and ("runs" in ln or ".venv" in ln) for ln in lines)


def _extras() -> dict[str, list[str]]:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def test_one_tensorrt_major_across_the_extra_and_the_gpu_image():
    """The gpu image installs TensorRT through the `tensorrt` extra itself (no second pin, no base image with its
    own TensorRT), and that extra pins one TensorRT major and the cuda-python of one CUDA major."""
    extras = _extras()
    trt = [r for r in extras["tensorrt"] if r.startswith("tensorrt")]
    cuda = [r for r in extras["tensorrt"] if r.startswith("cuda-python")]
    assert len(trt) == 1 and len(cuda) == 1
    for req in (trt[0], cuda[0]):
        low, high = re.search(r">=(\d+),<(\d+)$", req).groups()
        assert int(high) == int(low) + 1, req  # exactly one major
    cuda_major = re.search(r"-cu(\d+)", trt[0]).group(1)
    assert re.search(r">=(\d+)", cuda[0]).group(1) == cuda_major  # TensorRT's CUDA = cuda-python's CUDA
    gpu = _stages((REPO / "Dockerfile").read_text())["gpu"]
    installs = " ".join(ln for ln in gpu.splitlines() if "pip install" in ln)
    assert '"${WHEEL}[serve,tensorrt]"' in installs and '"${WHEEL}[gpu]"' in installs
    assert not re.search(r"\b(tensorrt|cuda-python)[=<>~ ]", installs)  # no second source of versions
    assert "pip uninstall -y onnxruntime" in gpu  # one ONNX Runtime build in the image: the GPU one
    assert "tensorrt" not in " ".join(extras["all"] + extras["dev"]) and "gpu" not in " ".join(extras["all"])


def test_gpu_extra_is_the_cuda_build_of_onnxruntime_and_stays_out_of_all():
    extras = _extras()
    assert [r for r in extras["gpu"] if r.startswith("onnxruntime-gpu")] == extras["gpu"]
    assert "[cuda,cudnn]" in extras["gpu"][0]  # the CUDA/cuDNN libraries come as nvidia-* wheels
    assert all("onnxruntime-gpu" not in r for name, reqs in extras.items() if name != "gpu" for r in reqs)

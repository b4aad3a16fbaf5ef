"""A Triton Inference Server model repository from a bundle's servable artifacts.

One Triton model per artifact (Triton serves one file per model)::

    REPO/<model>_onnx_fp32/config.pbtxt   platform "onnxruntime_onnx"
    REPO/<model>_onnx_fp32/1/model.onnx
    REPO/<model>_tensorrt_fp16/config.pbtxt  platform "tensorrt_plan"
    REPO/<model>_tensorrt_fp16/1/model.plan
    REPO/<model>_onnx_cuda_fp16/config.pbtxt  platform "onnxruntime_onnx", instance kind GPU
    ...                                   labels.txt beside each config (classification extension)

Each config declares ``max_batch_size`` (the bundle's max batch; Triton prepends the batch dimension, so
dims are (C, H, W) and (K,)) and ``dynamic_batching`` with preferred sizes and a short queue delay.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from serve.bundle import Bundle
from serve.runtimes import GPU_RUNTIMES  # Triton instance kind GPU for these (the rest KIND_CPU)

# Artifact.runtime -> (Triton platform, file name Triton expects); a runtime missing here has no Triton model.
PLATFORMS = {
    "onnxruntime": ("onnxruntime_onnx", "model.onnx"),
    "onnxruntime-cuda": ("onnxruntime_onnx", "model.onnx"),
    "tensorrt": ("tensorrt_plan", "model.plan"),
}


def triton_model_name(model_name: str, artifact_name: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", f"{model_name}_{artifact_name}")
    return base.strip("_") or "model"


def config_pbtxt(
    name: str,
    platform: str,
    *,
    max_batch: int,
    input_shape: list[int],
    num_classes: int,
    queue_delay_us: int = 500,
    gpu: bool | None = None,
) -> str:
    """The text of one config.pbtxt (``gpu``: instance kind GPU; default: only for TensorRT plans)."""
    gpu = platform == "tensorrt_plan" if gpu is None else gpu
    preferred = sorted({b for b in (max(1, max_batch // 4), max(1, max_batch // 2), max_batch)})
    dims = ", ".join(str(d) for d in input_shape)
    return (
        f'name: "{name}"\n'
        f'platform: "{platform}"\n'
        f"max_batch_size: {max_batch}\n"
        "input [\n"
        f'  {{ name: "input" data_type: TYPE_FP32 dims: [ {dims} ] }}\n'
        "]\n"
        "output [\n"
        f'  {{ name: "logits" data_type: TYPE_FP32 dims: [ {num_classes} ] label_filename: "labels.txt" }}\n'
        "]\n"
        "dynamic_batching {\n"
        f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]\n"
        f"  max_queue_delay_microseconds: {queue_delay_us}\n"
        "}\n"
        "instance_group [ { count: 1 kind: %s } ]\n" % ("KIND_GPU" if gpu else "KIND_CPU")
    )


def write_triton_repo(bundle: Bundle, repo: str | Path) -> list[str]:
    """Write one Triton model per servable ONNX Runtime / TensorRT artifact; returns the model names."""
    repo = Path(repo)
    repo.mkdir(parents=True, exist_ok=True)
    names = []
    for artifact in bundle.artifacts:
        if not artifact.servable or artifact.runtime not in PLATFORMS:
            continue
        platform, filename = PLATFORMS[artifact.runtime]
        name = triton_model_name(bundle.model_name, artifact.name)
        folder = repo / name
        (folder / "1").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle.path_of(artifact), folder / "1" / filename)
        (folder / "labels.txt").write_text("\n".join(bundle.labels) + "\n")
        (folder / "config.pbtxt").write_text(
            config_pbtxt(
                name,
                platform,
                max_batch=bundle.max_batch,
                input_shape=list(bundle.input.shape[1:]),
                num_classes=len(bundle.labels),
                gpu=artifact.runtime in GPU_RUNTIMES,
            )
        )
        names.append(name)
    return names

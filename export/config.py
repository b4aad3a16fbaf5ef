"""The export's config and result types: what ``tinymim export`` is asked to do, and what it made.

Below the code that runs them (:mod:`export.pipeline`) and the CLI glue (:mod:`export.command`); imports
nothing heavy, so ``tinymim export --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from export.errors import ExportError
from export.gate import thresholds_with_overrides
from export.quantize import ROLES
from tinymim.configio import field_help, require

FORMATS = ("onnx", "onnx-int8", "onnx-cuda-fp16", "tensorrt-fp16", "tensorrt-int8")


@dataclass(frozen=True)
class ExportConfig:
    """Everything ``tinymim export`` does, as one frozen, validated config."""

    checkpoint: str = field(
        default="", metadata=field_help("run folder (uses best/, else last/), checkpoint folder or .safetensors file")
    )
    out: str = field(
        default="", metadata=field_help("bundle folder to write (created; existing artifacts are replaced)")
    )
    formats: tuple[str, ...] = field(
        default=(),
        metadata=field_help(
            f"comma-separated subset of {','.join(FORMATS)}; "
            "empty = everything this machine can build (the GPU formats need an NVIDIA GPU)"
        ),
    )
    eval_data: str | None = field(
        default=None,
        metadata=field_help(
            "gate images: builtin:fashion-mnist or an image folder; default: the data recorded in the model card"
        ),
    )
    eval_images: int = field(
        default=1000, metadata=field_help("validation images the gate uses (class-balanced; all when fewer)")
    )
    calib_images: int = field(default=256, metadata=field_help("training images used to calibrate static INT8"))
    max_batch: int = field(default=32, metadata=field_help("largest batch the artifacts accept (TensorRT profile max)"))
    triton_repo: str | None = field(default=None, metadata=field_help("also write a Triton model repository here"))
    model_name: str | None = field(
        default=None, metadata=field_help("name in the bundle; default: the run folder's name")
    )
    opset: int = field(default=17, metadata=field_help("ONNX opset (17 keeps LayerNorm one LayerNormalization node)"))
    exporter: Literal["torchscript", "dynamo"] = field(
        default="torchscript",
        metadata=field_help(
            "torch.onnx exporter (torchscript emits opset 17 directly; dynamo needs a version conversion below 18)"
        ),
    )
    optimise: bool = field(
        default=True, metadata=field_help("try onnxslim / ORT transformer fusion; keep only what is measured faster")
    )
    calibration: Literal["minmax", "entropy", "percentile"] = field(
        default="minmax", metadata=field_help("static INT8 calibration")
    )
    per_channel: bool = field(default=True, metadata=field_help("per-output-channel INT8 weight scales"))
    int8_keep_float: tuple[str, ...] = field(
        default=("attention",),
        metadata=field_help(
            "parts of the ViT that static INT8 leaves in float, any of attention (q@k and softmax@v), head, "
            "patch_embed, linear; none = quantize every MatMul/Gemm/Conv (the report's QDQ debugger ranks the "
            "layers that lose most)"
        ),
    )
    gate: tuple[str, ...] = field(
        default=(), metadata=field_help("threshold overrides, e.g. int8.min_agreement=0.97,fp32.min_cosine=0.999")
    )
    timing_cache: str | None = field(
        default=None,
        metadata=field_help(
            "TensorRT timing cache file to start from and update (like trtexec --timingCacheFile); one made by "
            "another GPU or TensorRT is discarded with a warning. Default: a cache kept only for this export"
        ),
    )
    latency_repeats: int = field(default=10, metadata=field_help("timed calls per artifact and batch size"))
    threads: int | None = field(
        default=None, metadata=field_help("ONNX Runtime threads for timing (default: all cores)")
    )
    seed: int = field(
        default=0,
        metadata=field_help(
            "seed for the evaluation / calibration subsets "
            "(the training run's split seed from the card wins for its data)"
        ),
    )

    def validate(self) -> None:
        require(bool(self.checkpoint), "give the checkpoint or run folder to export (tinymim export RUN --out BUNDLE)")
        require(bool(self.out), "give the bundle folder to write with --out BUNDLE")
        bad = [f for f in self.formats if f not in FORMATS]
        require(not bad, f"unknown format(s) {bad}; choose from {', '.join(FORMATS)}")
        require(1 <= self.max_batch <= 4096, f"max_batch must be in 1..4096, got {self.max_batch}")
        require(self.eval_images >= 1, f"eval_images must be >= 1, got {self.eval_images}")
        require(self.calib_images >= 1, f"calib_images must be >= 1, got {self.calib_images}")
        require(13 <= self.opset <= 21, f"opset must be in 13..21, got {self.opset}")
        require(self.latency_repeats >= 1, "latency_repeats must be >= 1")
        bad_roles = [r for r in self.int8_keep_float if r not in (*ROLES, "none")]
        require(not bad_roles, f"int8_keep_float: unknown part(s) {bad_roles}; choose from {', '.join(ROLES)} or none")
        require(
            "none" not in self.int8_keep_float or len(self.int8_keep_float) == 1,
            "int8_keep_float: 'none' cannot be combined with other parts",
        )

        try:
            thresholds_with_overrides(self.gate)
        except ExportError as err:
            require(False, str(err))

    def replace(self, **changes: Any) -> ExportConfig:
        return dataclasses.replace(self, **changes)

    @property
    def int8_float_roles(self) -> tuple[str, ...]:
        """``int8_keep_float`` as node roles for :class:`export.quantize.StaticRecipe` ('none' -> ())."""
        return tuple(r for r in self.int8_keep_float if r != "none")


@dataclass
class ExportResult:
    bundle: Path
    report: dict[str, Any]
    exit_code: int  # 0: every requested artifact passed its gate; 3: at least one failed (see report)
    failed: list[str]

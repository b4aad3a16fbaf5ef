"""The quickstart's settings: ``QuickstartConfig`` (what the user picks) and what each scale trains.

Below the stages that read it (``tinymim_cli.quickstart_stages``) and the runner (``tinymim_cli.quickstart``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tinymim.configio import field_help, require

DATA = "builtin:fashion-mnist"  # every stage's data: the teacher's labels, the pool, the subset and the test split


@dataclass(frozen=True)
class QuickstartConfig:
    out: str = field(default="runs/quickstart", metadata=field_help("run folder (one sub-folder per stage)"))
    device: Literal["cpu", "cuda"] = field(default="cpu", metadata=field_help("where to train"))
    size: Literal["auto", "cpu", "tiny", "standard"] = field(
        default="auto",
        metadata=field_help(
            "model/data scale: cpu (fits ~5 min on 2 cores), tiny (a ~1 min smoke run), standard (ViT-S/ViT-T at "
            "224 px, for GPUs); auto = cpu on --device cpu, standard on cuda"
        ),
    )
    seed: int = field(
        default=0,
        metadata=field_help("seed of every stage (initialisation, data order, which images form the labelled subset)"),
    )
    fresh: bool = field(default=False, metadata=field_help("delete the run folder and start over"))
    port: int = field(default=0, metadata=field_help("server port (0: a free loopback port)"))
    bench_seconds: float = field(default=3.0, metadata=field_help("seconds per concurrency level in the bench"))
    http_images: int = field(default=200, metadata=field_help("held-out images classified over HTTP"))
    progress: bool = field(default=True, metadata=field_help("progress bars"))
    amp: Literal["auto", "off", "bf16"] = field(
        default="auto",
        metadata=field_help(
            "mixed precision of the teacher and distillation stages (the teacher-sized models): auto = the GPU's "
            "(bf16 or fp16) on CUDA, bf16 on a CPU that computes it natively (AVX512-BF16 or AMX: 1.3x faster "
            "there at the same accuracy, BENCHMARKS.md), off on other CPUs (emulated bf16 is slower than fp32)"
        ),
    )

    def validate(self) -> None:
        require(self.bench_seconds > 0, f"bench_seconds must be positive, got {self.bench_seconds}")
        require(self.http_images >= 1, f"http_images must be at least 1, got {self.http_images}")
        require(0 <= self.port <= 65535, f"port must be in 0..65535, got {self.port}")

    @property
    def scale(self) -> str:
        if self.size != "auto":
            return self.size
        return "standard" if self.device == "cuda" else "cpu"


# What each scale trains. The setting is the label-scarce one of docs/METHOD.md section 5: the teacher has
# been trained on every labelled image it is allowed; the student is distilled on the whole image pool with
# its labels unused, then fine-tuned on a small labelled subset; the scratch twin is the same architecture
# trained from scratch on the same labelled images with the same budget ("labelled" holds what both share).
# "test": the images every model is scored on (its final weights), with ``tinymim eval``'s code.
# Every value a stage's result depends on is written here, not left to `tinymim train`/`distill` defaults, so
# that a changed default does not move the quickstart's figures. Short CPU runs train without augmentation (in
# one or a few epochs it costs accuracy: BENCHMARKS.md); distillation keeps the method's own crop + jitter.
_FROM_SCRATCH = dict(augment=False, layer_decay=1.0, weight_decay=0.05)  # layer-wise decay is for fine-tuning
_DISTILL = dict(
    method="relation:1,logits:1",
    temperature=4.0,
    crop_scale_min=0.2,
    drop_path=0.1,
    weight_decay=0.05,
    last_block_init="random",
)
_FINETUNE = dict(lr=5e-4, layer_decay=0.75, drop_path=0.0, weight_decay=0.05)
_SCRATCH = dict(lr=1e-3, drop_path=0.0, **_FROM_SCRATCH)

# cpu: chosen by measurement to fit `make quickstart` (install included) in 10 minutes on 2 cores; the settings
# tried and their seconds and accuracies are in BENCHMARKS.md. Patch 7 on 28 px images gives 16 tokens.
SCALES: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "teacher": dict(
            arch="vit_small",
            embed_dim=128,
            num_heads=4,
            depth=2,
            img_size=28,
            patch_size=7,
            limit_train=3000,
            limit_val=500,
            epochs=1,
            batch_size=64,
            lr=2e-3,
            warmup_epochs=0.1,
            drop_path=0.0,
            **_FROM_SCRATCH,
        ),
        "distill": dict(
            student="vit_tiny",
            student_embed_dim=64,
            student_num_heads=2,
            student_depth=1,
            limit_train=3000,
            limit_val=500,
            epochs=1,
            batch_size=64,
            base_lr=1.5e-3,
            warmup_epochs=0.1,
            **_DISTILL,
        ),
        "labelled": dict(limit_train=300, limit_val=500, epochs=2, batch_size=64, augment=False, warmup_epochs=0.5),
        "finetune": _FINETUNE,
        "scratch": _SCRATCH,
        "test": dict(limit=2000),  # a class-balanced part of the test split keeps the smoke run short
    },
    "cpu": {
        "teacher": dict(
            arch="vit_small",
            embed_dim=256,
            num_heads=4,
            depth=4,
            img_size=28,
            patch_size=7,
            limit_train=None,
            limit_val=1000,
            epochs=1,
            batch_size=128,
            lr=1e-3,
            warmup_epochs=0.1,
            drop_path=0.1,
            **_FROM_SCRATCH,
        ),
        "distill": dict(
            student="vit_tiny",
            student_embed_dim=128,
            student_num_heads=2,
            student_depth=3,
            limit_train=None,
            limit_val=1000,
            epochs=1,
            batch_size=128,
            base_lr=1.5e-3,
            warmup_epochs=0.05,
            **_DISTILL,
        ),
        "labelled": dict(limit_train=3000, limit_val=1000, epochs=7, batch_size=64, augment=False, warmup_epochs=1),
        "finetune": _FINETUNE,
        "scratch": _SCRATCH,
        "test": dict(limit=None),  # the whole test split
    },
    # For GPUs; not measured yet (no GPU was available to the sessions that chose the cpu scale). ViT-S over
    # ViT-T is 3.95x in parameters: the student drops one of ViT-T's 12 blocks to be 4x+ smaller (4.3x).
    "standard": {
        "teacher": dict(
            arch="vit_small",
            img_size=224,
            patch_size=16,
            limit_val=2000,
            epochs=10,
            batch_size=128,
            lr=1e-3,
            layer_decay=1.0,
            weight_decay=0.05,
        ),
        "distill": dict(
            student="vit_tiny", student_depth=11, limit_val=2000, epochs=10, batch_size=128, base_lr=1.5e-3, **_DISTILL
        ),
        "labelled": dict(limit_train=1000, limit_val=2000, epochs=50, batch_size=64),
        "finetune": _FINETUNE,
        "scratch": dict(lr=1e-3, layer_decay=1.0, drop_path=0.0, weight_decay=0.05),
        "test": dict(limit=None),
    },
}

"""The quickstart's settings: ``QuickstartConfig`` (what the user picks) and the per-scale sizes of each stage.

Below the stages that read it (``tinymim_cli.quickstart_stages``) and the runner (``tinymim_cli.quickstart``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tinymim.configio import field_help, require


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
    fresh: bool = field(default=False, metadata=field_help("delete the run folder and start over"))
    port: int = field(default=0, metadata=field_help("server port (0: a free loopback port)"))
    bench_seconds: float = field(default=5.0, metadata=field_help("seconds per concurrency level in the bench"))
    http_images: int = field(default=200, metadata=field_help("held-out images classified over HTTP"))
    progress: bool = field(default=True, metadata=field_help("progress bars"))

    def validate(self) -> None:
        require(self.bench_seconds > 0, f"bench_seconds must be positive, got {self.bench_seconds}")
        require(self.http_images >= 1, f"http_images must be at least 1, got {self.http_images}")
        require(0 <= self.port <= 65535, f"port must be in 0..65535, got {self.port}")

    @property
    def scale(self) -> str:
        if self.size != "auto":
            return self.size
        return "standard" if self.device == "cuda" else "cpu"


# Sizes per scale. cpu: measured to fit the 10-minute budget on a 2-core machine (see BENCHMARKS.md).
# Patch 7 on 28 px images gives 16 tokens: the widths and head counts are ViT-S (384/6) and ViT-T (192/3).
SCALES: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "teacher": dict(
            arch="vit_small",
            img_size=28,
            patch_size=7,
            depth=2,
            epochs=1,
            limit_train=3000,
            limit_val=1000,
            batch_size=64,
            lr=1e-3,
        ),
        "distill": dict(
            student="vit_tiny", student_depth=2, epochs=1, limit_train=3000, limit_val=1000, batch_size=64, base_lr=1e-3
        ),
        "finetune": dict(epochs=1, limit_train=3000, limit_val=1000, batch_size=64, lr=1e-3),
    },
    "cpu": {
        "teacher": dict(
            arch="vit_small", img_size=28, patch_size=7, depth=4, epochs=1, limit_train=20000, batch_size=128, lr=1e-3
        ),
        "distill": dict(student="vit_tiny", student_depth=4, epochs=1, limit_train=24000, batch_size=128, base_lr=1e-3),
        "finetune": dict(epochs=1, limit_train=48000, batch_size=128, lr=2e-3),
    },
    "standard": {
        "teacher": dict(arch="vit_small", img_size=224, patch_size=16, epochs=10, batch_size=128, lr=1e-3),
        "distill": dict(student="vit_tiny", epochs=10, batch_size=128, base_lr=1.5e-4 * 8),
        "finetune": dict(epochs=10, batch_size=128, lr=1e-3),
    },
}
# Short runs train without augmentation (crops, RandAugment, Mixup/CutMix and erasing pay off over long
# schedules; in one or two CPU epochs they cost accuracy). Distillation keeps the method's own crop + jitter.
SHORT_RUN_TRAIN = dict(augment=False, label_smoothing=0.1, warmup_epochs=0.1, drop_path=0.0, checkpoint_every_steps=0)

"""``EvalConfig``: every setting of one ``tinymim eval`` run.

Below the code that runs it (:func:`compress.evaluation.evaluate_checkpoint`) and the CLI glue
(``compress.commands.evaluate``); imports nothing heavy, so ``tinymim eval --help`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tinymim.configio import field_help, require


@dataclass(frozen=True)
class EvalConfig:
    """Every setting of one evaluation (``tinymim eval``)."""

    checkpoint: str = field(
        default="", metadata=field_help("run folder (best/ else last/), checkpoint folder or weights file")
    )
    data: str = field(default="builtin:fashion-mnist", metadata=field_help("builtin:fashion-mnist or an image folder"))
    split: Literal["val", "train"] = field(default="val", metadata=field_help("which split to evaluate"))
    val_split: float = field(default=0.1, metadata=field_help("validation fraction for a folder without train/ val/"))
    strict_data: bool = field(default=False, metadata=field_help("unreadable images are an error instead of skipped"))
    limit: int | None = field(default=None, metadata=field_help("evaluate a class-balanced subset of N images"))
    batch_size: int = field(default=128, metadata=field_help("evaluation batch size"))
    num_workers: int = field(default=0, metadata=field_help("data-loader worker processes"))
    device: str = field(default="auto", metadata=field_help("auto, cpu, cuda or cuda:N"))
    output: str | None = field(
        default=None, metadata=field_help("folder for eval.json and confusion.png (default: <checkpoint>/eval)")
    )

    def validate(self) -> None:
        require(bool(self.checkpoint), "give the checkpoint to evaluate: tinymim eval CHECKPOINT --data ...")
        require(Path(self.checkpoint).exists(), f"config key 'checkpoint': {self.checkpoint} does not exist")
        if not self.data.startswith("builtin:"):
            require(Path(self.data).expanduser().is_dir(), f"config key 'data': folder {self.data} does not exist")
        require(self.batch_size >= 1, f"config key 'batch_size' must be >= 1, got {self.batch_size}")
        require(self.limit is None or self.limit >= 1, f"config key 'limit' must be >= 1, got {self.limit}")
        require(self.num_workers >= 0, f"config key 'num_workers' must be >= 0, got {self.num_workers}")
        require(0 <= self.val_split < 1, f"config key 'val_split' must be in [0, 1), got {self.val_split}")

"""The model card: everything downstream needs to rebuild, preprocess and label a model.

Stored as ``card.json`` next to ``model.safetensors`` and inside every resume state. Pure Python (no
torch): it is the contract between the rooms. compress/ writes it (training evaluation and the distillation
views read its ``Preprocess``), export/ copies the ``Preprocess`` into the bundle manifest, and serve/ builds
its image preprocessor from that same type (serve never reads a card itself, only the bundle).

Preprocessing semantics (identical in training evaluation, the export gate and serving):
decode -> convert to "L" (1 channel) or "RGB" (3 channels) -> resize the shorter side to
``floor(size / crop_pct)`` with ``interpolation`` -> center-crop ``size`` -> float32 in [0, 1] ->
``(x - mean) / std`` -> CHW.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinymim import __version__
from tinymim.errors import TinymimError

CARD_VERSION = 1
CARD_FILE = "card.json"
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


class CardError(TinymimError):
    """A model card is missing, unreadable or inconsistent."""


def normalisation_problem(
    mean: Sequence[float] | None, std: Sequence[float] | None, channels: int | None = None
) -> str | None:
    """What is wrong with a mean/std pair for ``channels`` input channels (None: not known yet), or None.

    The one check of normalisation values; each caller raises its own error type with this message.
    """
    if (mean is None) != (std is None):
        return "mean and std must be given together"
    if mean is None or std is None:
        return None
    if channels is not None and (len(mean) != channels or len(std) != channels):
        return f"mean/std need {channels} values each (one per input channel), got {tuple(mean)} / {tuple(std)}"
    if len(mean) != len(std):
        return f"mean and std need the same number of values, got {tuple(mean)} / {tuple(std)}"
    if any(s <= 0 for s in std):
        return f"std must be positive, got {tuple(std)}"
    return None


def adapt_channels(values: Sequence[float], channels: int) -> tuple[float, ...]:
    """Per-channel statistics for ``channels`` channels: RGB -> grey averages them, grey -> RGB repeats it.

    The one place where a mean or std is adapted to a model's channel count (data statistics, an init
    checkpoint's card with another channel count).
    """
    values = tuple(float(v) for v in values)
    if len(values) == channels:
        return values
    if channels == 1:
        return (sum(values) / len(values),)
    if len(values) == 1:
        return values * channels
    raise CardError(f"cannot adapt the {len(values)} values {values} to {channels} channels")


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the model's input tensor (see module docstring)."""

    input_size: tuple[int, int, int]  # (C, H, W)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bicubic"
    crop_pct: float = 1.0

    def __post_init__(self) -> None:
        c = self.input_size[0]
        if c not in (1, 3):
            raise CardError(f"preprocess.input_size channels must be 1 or 3, got {c}")
        problem = normalisation_problem(self.mean, self.std, c)
        if problem:
            raise CardError(f"preprocess: {problem}")
        if self.interpolation not in INTERPOLATIONS:
            raise CardError(f"preprocess.interpolation {self.interpolation!r} not in {INTERPOLATIONS}")
        if not 0 < self.crop_pct <= 1:
            raise CardError(f"preprocess.crop_pct must be in (0, 1], got {self.crop_pct}")

    @property
    def channels(self) -> int:
        return self.input_size[0]

    @property
    def image_size(self) -> int:
        return self.input_size[1]

    def replace(self, **changes: Any) -> Preprocess:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        try:
            return cls(
                input_size=tuple(int(v) for v in d["input_size"]),  # type: ignore[arg-type]
                mean=tuple(float(v) for v in d["mean"]),
                std=tuple(float(v) for v in d["std"]),
                interpolation=str(d.get("interpolation", "bicubic")),
                crop_pct=float(d.get("crop_pct", 1.0)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CardError(f"preprocess section is malformed ({err!r}): {d}") from None


@dataclass(frozen=True)
class ModelCard:
    """Architecture, preprocessing, labels, provenance and metrics of one saved model.

    ``arch`` is the timm model name; ``arch_kwargs`` the overrides passed to ``timm.create_model``
    (img_size, patch_size, depth, num_heads, embed_dim, in_chans, num_classes, global_pool, ...).
    ``distilled_block_heads`` is set when the last block was built with the teacher's head count for
    relation distillation (docs/METHOD.md section 1); fine-tuning restores ``arch_kwargs['num_heads']``.
    ``task`` is "classifier" (head trained) or "backbone" (head untrained, e.g. after distillation).
    """

    arch: str
    arch_kwargs: dict[str, Any]
    preprocess: Preprocess
    labels: tuple[str, ...]
    task: str = "classifier"
    distilled_block_heads: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)  # command, resolved config, parents
    tool_version: str = __version__

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def replace(self, **changes: Any) -> ModelCard:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "card_version": CARD_VERSION,
            "arch": self.arch,
            "arch_kwargs": dict(self.arch_kwargs),
            "preprocess": self.preprocess.to_dict(),
            "labels": list(self.labels),
            "task": self.task,
            "distilled_block_heads": self.distilled_block_heads,
            "data": self.data,
            "metrics": self.metrics,
            "training": self.training,
            "tool_version": self.tool_version,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        if not isinstance(d, dict) or d.get("card_version") != CARD_VERSION:
            raise CardError(
                f"not a tinymim model card (card_version {d.get('card_version') if isinstance(d, dict) else None!r}, "
                f"expected {CARD_VERSION})"
            )
        try:
            return cls(
                arch=str(d["arch"]),
                arch_kwargs=dict(d["arch_kwargs"]),
                preprocess=Preprocess.from_dict(d["preprocess"]),
                labels=tuple(str(x) for x in d["labels"]),
                task=str(d.get("task", "classifier")),
                distilled_block_heads=d.get("distilled_block_heads"),
                data=dict(d.get("data", {})),
                metrics=dict(d.get("metrics", {})),
                training=dict(d.get("training", {})),
                tool_version=str(d.get("tool_version", "unknown")),
            )
        except KeyError as err:
            raise CardError(f"model card is missing the key {err}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, directory: str | Path) -> Path:
        """Write ``card.json`` atomically into ``directory``."""
        path = Path(directory) / CARD_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        """Read a card from ``card.json`` or from a directory holding one."""
        p = Path(path)
        if p.is_dir():
            p = p / CARD_FILE
        if not p.is_file():
            raise CardError(
                f"no model card at {p}: tinymim checkpoints carry card.json next to the weights; "
                "re-save the model with tinymim train/distill, or write a card by hand (see README)"
            )
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as err:
            raise CardError(f"model card {p} is not valid JSON: {err}") from None
        return cls.from_dict(d)

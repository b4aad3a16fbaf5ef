"""The two recipes of ``tinymim train`` and the rules that scale them to the data (docs/RECIPES.md).

- **from-scratch** (no ``--init``): the DeiT / timm practice for training a ViT from random weights (Touvron
  et al. 2021: AdamW, weight decay 0.05, warm-up then cosine, label smoothing 0.1, drop path 0.1, no
  layer-wise decay), with its learning rate, warm-up and augmentation scaled to the data (rules below).
- **fine-tune** (``--init``): the MAE fine-tuning recipe (He et al. 2022; docs/METHOD.md section 3): a lower
  learning rate than from scratch (base 2e-3, 4x MAE's, measured on distilled students) with layer-wise decay
  0.65 that protects the pre-trained early layers, the same augmentation rules as from-scratch.

Every value a recipe chooses can be overridden by its flag (or YAML key); ``--no-augment`` turns every
augmentation off. ``choose_recipe`` returns the values and which of them the recipe chose, and
``Recipe.describe()`` is the first line of the training log.

Rules (``DataFacts`` are what the run is about to see):

- learning rate by batch: ``lr = base_lr x effective batch / 256`` (the linear scaling rule of DeiT / MAE);
- warm-up by updates: ``WARMUP_FRACTION`` of the run's optimizer updates, at most ``WARMUP_MAX_EPOCHS``
  epochs, never less than one update;
- augmentation by passes over the data (``augmentation_level``): none for short runs (fewer than
  ``LIGHT_MIN_EPOCHS`` epochs: measured, any random crop of a 28 px image cost ~10 points of top-1 at 6-15
  epochs), light for longer ones, DeiT's full set from ``FULL_MIN_EPOCHS`` epochs;
- augmentation by image size: the smallest RandomResizedCrop keeps at least ``MIN_CROP_SIDE`` pixels of side
  (``crop_scale_min = (MIN_CROP_SIDE / img_size)^2``, never below DeiT's 0.08), so a 28 px image is never cut
  down to a 8 px patch blown up to 28.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCRATCH, FINETUNE = "from-scratch", "fine-tune"

# Config keys a recipe chooses (the TrainConfig fields whose default is None = "the recipe's").
RECIPE_KEYS = (
    "base_lr",
    "warmup_epochs",
    "weight_decay",
    "layer_decay",
    "drop_path",
    "label_smoothing",
    "crop_scale_min",
    "hflip",
    "rand_augment",
    "random_erasing",
    "mixup",
    "cutmix",
)
UNSET = {"rand_augment": "auto"}  # keys whose "the recipe's" value is not None ("none" turns RandAugment off)
AUGMENT_KEYS = ("crop_scale_min", "hflip", "rand_augment", "random_erasing", "mixup", "cutmix", "label_smoothing")

SCRATCH_BASE_LR = 4e-3  # per 256 images: 1e-3 at batch 64 (measured: docs/RECIPES.md, BENCHMARKS.md "Recipes")
# 4x MAE's 5e-4 (ViT-B at batch 1024): at the small batches this recipe meets (64), the linear rule scales MAE's
# value to 1.25e-4, which cost a distilled student 1.4 points against 5e-4 (two seeds; docs/RECIPES.md,
# "The fine-tune learning rate"). Fine-tuning a large model at batch 1024: pass --base-lr 5e-4.
FINETUNE_BASE_LR = 2e-3
WARMUP_FRACTION = 0.1
WARMUP_MAX_EPOCHS = 5.0  # DeiT's warm-up
MIN_CROP_SIDE = 16  # pixels of side the smallest random crop keeps
DEIT_CROP_SCALE_MIN = 0.08
LIGHT_MIN_EPOCHS = 30  # below: no augmentation (measured up to 15 epochs); 30 is between that and DeiT's regime
FULL_MIN_EPOCHS = 100  # DeiT trains 300 epochs with its full set


@dataclass(frozen=True)
class DataFacts:
    """What a run is about to train on: images, classes, input side, epochs and the effective batch."""

    train_images: int
    classes: int
    img_size: int
    epochs: int
    batch: int  # images per optimizer update, all processes and accumulation steps together

    @property
    def per_class(self) -> float:
        return self.train_images / max(self.classes, 1)

    @property
    def updates_per_epoch(self) -> int:
        return max(self.train_images // self.batch, 1)

    @property
    def total_updates(self) -> int:
        return self.updates_per_epoch * self.epochs


@dataclass(frozen=True)
class Recipe:
    """The values a run uses for every ``RECIPE_KEYS`` entry, and which of them the recipe chose."""

    name: str
    values: dict[str, Any]
    chosen: tuple[str, ...]
    facts: DataFacts
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def given(self) -> tuple[str, ...]:
        return tuple(k for k in RECIPE_KEYS if k not in self.chosen)

    def describe(self, lr: float | str, augment: bool = True) -> str:
        """One line: the recipe, why, and every value (``lr``: the absolute peak lr or 'auto')."""
        f = self.facts
        why = "no --init" if self.name == SCRATCH else "--init"
        head = (
            f"recipe {self.name} ({why}; {f.train_images} images, {f.classes} classes = {f.per_class:.0f} per class, "
            f"{f.img_size} px, {f.epochs} epochs x {f.updates_per_epoch} updates of batch {f.batch})"
        )
        parts = [f"lr {lr if isinstance(lr, str) else f'{lr:.3g}'}"]
        for k in RECIPE_KEYS:
            if not augment and k in AUGMENT_KEYS:
                continue
            v = self.values[k]
            text = f"{v:.3g}" if isinstance(v, float) else str(v)
            parts.append(f"{k} {text}{'' if k in self.chosen else ' (given)'}{self.notes.get(k, '')}")
        if not augment:
            parts.append("augmentation off (--no-augment)")
        return f"{head}: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        f = self.facts
        return {
            "name": self.name,
            "values": dict(self.values),
            "chosen": list(self.chosen),
            "facts": {
                "train_images": f.train_images,
                "classes": f.classes,
                "img_size": f.img_size,
                "epochs": f.epochs,
                "batch": f.batch,
            },
        }


def warmup_epochs(f: DataFacts) -> float:
    """``WARMUP_FRACTION`` of the run's updates, at most ``WARMUP_MAX_EPOCHS``, at least one update."""
    updates = max(1, round(WARMUP_FRACTION * f.total_updates))
    return min(updates / f.updates_per_epoch, WARMUP_MAX_EPOCHS)


def crop_scale_min(img_size: int) -> float:
    """Smallest RandomResizedCrop area fraction: a crop keeps >= MIN_CROP_SIDE px of side (DeiT's 0.08 floor)."""
    return round(min(1.0, max(DEIT_CROP_SCALE_MIN, (MIN_CROP_SIDE / img_size) ** 2)), 3)


def augmentation_level(f: DataFacts) -> int:
    """0 (none), 1 (light: flip, a crop keeping ``MIN_CROP_SIDE`` px, label smoothing) or 2 (DeiT's full set).

    Augmentation trades slower fitting for less memorising, so it pays only when a run sees each image many
    times. Measured (docs/RECIPES.md): ViT-T width at 28 px, 1,000 and 5,000 images, 6-15 epochs, a
    random crop (scale >= 0.33) with flip and label smoothing cost 9-11 points against none at the same lr; so did
    a 60,000-image teacher at 1 epoch. The thresholds above 15 epochs follow DeiT, not a measurement here.
    """
    if f.epochs >= FULL_MIN_EPOCHS:
        return 2
    if f.epochs >= LIGHT_MIN_EPOCHS:
        return 1
    return 0


# level 0 is exactly what --no-augment gives (the whole image, no flip, no label smoothing)
LEVELS: dict[int, dict[str, Any]] = {
    0: {
        "hflip": 0.0,
        "label_smoothing": 0.0,
        "rand_augment": "none",
        "random_erasing": 0.0,
        "mixup": 0.0,
        "cutmix": 0.0,
    },
    1: {
        "hflip": 0.5,
        "label_smoothing": 0.1,
        "rand_augment": "none",
        "random_erasing": 0.0,
        "mixup": 0.0,
        "cutmix": 0.0,
    },
    2: {
        "hflip": 0.5,
        "label_smoothing": 0.1,
        "rand_augment": "rand-m9-mstd0.5-inc1",
        "random_erasing": 0.25,
        "mixup": 0.8,
        "cutmix": 1.0,
    },
}


def augmentation(f: DataFacts) -> dict[str, Any]:
    level = augmentation_level(f)
    return {"crop_scale_min": 1.0 if level == 0 else crop_scale_min(f.img_size), **LEVELS[level]}


def from_scratch(f: DataFacts) -> dict[str, Any]:
    """DeiT practice scaled to ``f`` (module docstring)."""
    return {
        "base_lr": SCRATCH_BASE_LR,
        "warmup_epochs": warmup_epochs(f),
        "weight_decay": 0.05,
        "layer_decay": 1.0,
        "drop_path": 0.1,
        **augmentation(f),
    }


def fine_tune(f: DataFacts) -> dict[str, Any]:
    """MAE fine-tuning: lower lr, layer decay 0.65; warm-up and augmentation by the same rules as from-scratch."""
    return {
        "base_lr": FINETUNE_BASE_LR,
        "warmup_epochs": warmup_epochs(f),
        "weight_decay": 0.05,
        "layer_decay": 0.65,
        "drop_path": 0.1,
        **augmentation(f),
    }


def choose_recipe(cfg: Any, facts: DataFacts) -> Recipe:
    """The recipe for ``cfg`` (from-scratch without ``init``, else fine-tune) with ``cfg``'s own values on top.

    A key of ``cfg`` that is not None was given by the user and wins; ``cfg.augment`` False turns every
    augmentation off (plain crop, no flip, no label smoothing) whatever the recipe says.
    """
    name = FINETUNE if cfg.init else SCRATCH
    base = (fine_tune if cfg.init else from_scratch)(facts)
    values, chosen = {}, []
    for k in RECIPE_KEYS:
        given = getattr(cfg, k)
        if given is None or given == UNSET.get(k):
            values[k] = base[k]
            chosen.append(k)
        else:
            values[k] = given
    notes = {"warmup_epochs": f" = {round(values['warmup_epochs'] * facts.updates_per_epoch)} updates"}
    if cfg.lr is not None:
        notes["base_lr"] = " (unused: lr given)"
    return Recipe(name, values, tuple(chosen), facts, notes)

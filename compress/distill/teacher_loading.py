"""Load a teacher from a tinymim checkpoint (with its card) or from a timm name plus a weights file.

A tinymim checkpoint carries its preprocessing in the card. A bare timm name does not: its normalisation
must be given (``teacher_mean`` / ``teacher_std``); we never assume ImageNet values for user weights.

Headless teachers (docs/METHOD.md section 5): the paper's teachers are MIM-pretrained encoders with no
classifier. A weights file without ``head.*`` keys (MAE or DINO style, or any timm ViT saved with
``num_classes=0``) becomes a backbone teacher (``num_classes=0``, ``is_classifier=False``); it is never
given an invented random head. MAE's decoder and mask token, and the ``backbone.`` prefix of DINO-style
files, are recognised: the encoder's keys are kept and the rest is reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from compress.checkpoint import CARD_FILE, load_model, read_state_dict, resolve_checkpoint
from compress.distill.errors import DistillError, NormalizationError
from compress.errors import CheckpointError
from compress.models import SHORT_NAMES, head_keys, load_weights
from tinymim.card import ModelCard, Preprocess, normalisation_problem

if TYPE_CHECKING:
    from compress.distill.config import TeacherStudentConfig

log = logging.getLogger(__name__)


@dataclass
class LoadedTeacher:
    """A teacher network, its preprocessing, its labels (None when unknown) and where it came from."""

    model: nn.Module
    preprocess: Preprocess
    labels: tuple[str, ...] | None
    is_classifier: bool
    source: str
    card: ModelCard | None = None


def _looks_like_checkpoint(spec: str) -> bool:
    p = Path(spec).expanduser()
    return p.exists() or spec.endswith((".safetensors", ".pt", ".pth")) or "/" in spec


def load_configured_teacher(cfg: TeacherStudentConfig) -> LoadedTeacher:
    """The teacher a distill or ablate config names, with its teacher_* flags (one reading for both commands)."""
    return load_teacher(
        cfg.teacher,
        weights=cfg.teacher_weights,
        mean=cfg.teacher_mean,
        std=cfg.teacher_std,
        img_size=cfg.teacher_img_size,
        in_chans=cfg.teacher_in_chans,
        arch_overrides=cfg.teacher_arch_overrides,
    )


def load_teacher(
    spec: str,
    *,
    weights: str | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    img_size: int | None = None,
    in_chans: int | None = None,
    num_classes: int | None = None,
    arch_overrides: dict[str, int | None] | None = None,
) -> LoadedTeacher:
    """``spec``: a tinymim run/checkpoint folder or weights file with card.json, or a timm model name.

    For a timm name ``weights`` is required (weights are never downloaded) and so are ``mean``/``std``;
    ``arch_overrides`` (depth, embed_dim, num_heads, patch_size) describe a ViT that differs from the name's
    defaults. Weights that do not fit raise CheckpointError listing the missing / unexpected / mis-shaped keys.
    """
    if _looks_like_checkpoint(spec):
        return _from_checkpoint(spec, mean, std)
    return _from_timm_name(
        spec,
        weights=weights,
        mean=mean,
        std=std,
        img_size=img_size,
        in_chans=in_chans,
        num_classes=num_classes,
        arch_overrides={k: v for k, v in (arch_overrides or {}).items() if v is not None},
    )


def _from_checkpoint(spec: str, mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> LoadedTeacher:
    weights = resolve_checkpoint(Path(spec).expanduser())
    if not (weights.parent / CARD_FILE).is_file():
        raise DistillError(
            f"{weights} has no {CARD_FILE} beside it, so its architecture and input normalisation are unknown. "
            "Name its timm architecture and give the normalisation it was trained with: --teacher <timm name, "
            f"e.g. vit_base_patch16_224> --teacher-weights {weights} --teacher-mean M --teacher-std S (plus "
            "--teacher-img-size / --teacher-patch-size / --teacher-depth / --teacher-embed-dim / "
            "--teacher-num-heads where it differs from that name's defaults)"
        )
    model, card = load_model(weights)
    pre = card.preprocess
    if mean is not None or std is not None:
        mean, std = mean or pre.mean, std or pre.std
        problem = normalisation_problem(mean, std, pre.channels)
        if problem:
            raise NormalizationError(f"--teacher-mean/--teacher-std for {spec}: {problem}")
        pre = pre.replace(mean=tuple(mean), std=tuple(std))
    return LoadedTeacher(model, pre, card.labels, card.task == "classifier", f"checkpoint {spec}", card)


def _state_dict_num_classes(model: nn.Module, sd: dict[str, torch.Tensor]) -> int | None:
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(head, nn.Linear):
        return None
    names = {id(p): n for n, p in model.named_parameters()}
    key = names.get(id(head.weight))
    return int(sd[key].shape[0]) if key in sd and sd[key].ndim == 2 else None


def encoder_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ViT encoder's keys of a teacher file: DINO's ``backbone.`` prefix is stripped (other top-level
    modules, such as its projection head, are dropped) and MAE's decoder and mask token are dropped."""
    if any(k.startswith("backbone.") for k in sd):
        dropped = sorted(k for k in sd if not k.startswith("backbone."))
        sd = {k.removeprefix("backbone."): v for k, v in sd.items() if k.startswith("backbone.")}
        if dropped:
            log.info(
                "teacher weights: kept the backbone.* encoder, ignored %d other keys (e.g. %s)",
                len(dropped),
                dropped[0],
            )
    mae = sorted(k for k in sd if k.startswith("decoder") or k == "mask_token")
    if mae:
        log.info("teacher weights: ignored the MAE decoder and mask token (%d keys)", len(mae))
        sd = {k: v for k, v in sd.items() if k not in set(mae)}
    return sd


def _has_head_weights(model: nn.Module, sd: dict[str, torch.Tensor]) -> bool:
    """Whether ``sd`` holds the weights of ``model``'s classifier head (False for a headless encoder)."""
    keys = head_keys(model)
    return bool(keys) and any(k in sd for k in keys)


def _state_dict_in_chans(sd: dict[str, torch.Tensor]) -> int | None:
    first_conv = next((v for v in sd.values() if v.ndim == 4), None)
    return None if first_conv is None else int(first_conv.shape[1])


def _from_timm_name(
    name: str,
    *,
    weights: str | None,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
    img_size: int | None,
    in_chans: int | None,
    num_classes: int | None,
    arch_overrides: dict[str, int],
) -> LoadedTeacher:
    import timm

    arch = SHORT_NAMES.get(name, name)
    if not timm.is_model(arch):
        import difflib

        close = difflib.get_close_matches(arch, timm.list_models(), n=5)
        raise DistillError(
            f"teacher {name!r} is neither an existing checkpoint path nor a timm model name"
            + (f"; close timm names: {', '.join(close)}" if close else "")
        )
    if weights is None:
        raise DistillError(
            f"teacher {name!r} is a timm name: give its weights with --teacher-weights PATH "
            "(weights are never downloaded; a random teacher teaches nothing)"
        )
    if mean is None or std is None:
        raise NormalizationError(
            f"the input normalisation of teacher {name!r} with weights {weights} is unknown: pass --teacher-mean "
            "and --teacher-std (the values its weights were trained with, e.g. 0.485,0.456,0.406 / "
            "0.229,0.224,0.225 for ImageNet) or use a tinymim checkpoint whose card records them"
        )
    sd = encoder_state_dict(read_state_dict(weights))
    kwargs: dict[str, object] = {"pretrained": False, **arch_overrides}
    chans = in_chans or _state_dict_in_chans(sd) or 3
    kwargs["in_chans"] = chans
    if img_size is not None:
        kwargs["img_size"] = img_size
    try:
        model = timm.create_model(arch, **kwargs)
    except TypeError:  # CNNs take any input size and have no img_size argument
        kwargs.pop("img_size", None)
        model = timm.create_model(arch, **kwargs)
    if num_classes is None and not _has_head_weights(model, sd):
        classes: int | None = 0  # a headless encoder stays headless: no invented classifier
    else:
        classes = num_classes or _state_dict_num_classes(model, sd)
    if classes is not None and classes != getattr(model, "num_classes", classes):
        model = timm.create_model(arch, num_classes=classes, **kwargs)
    try:
        load_weights(model, sd, strict_arch=True)
    except CheckpointError as err:
        raise CheckpointError(
            f"teacher weights {weights} do not fit {arch} (with in_chans={chans}"
            f"{f', img_size={img_size}' if img_size else ''}): {err}"
        ) from None
    problem = normalisation_problem(mean, std, chans)
    if problem:
        raise NormalizationError(f"--teacher-mean/--teacher-std for a teacher with {chans} input channels: {problem}")
    size = img_size or _model_img_size(model)
    pre = Preprocess((chans, size, size), tuple(mean), tuple(std), "bicubic", 1.0)
    is_classifier = getattr(model, "num_classes", 0) > 0
    log.info(
        "teacher %s from %s: %d input channels, %d px, %s",
        arch,
        weights,
        chans,
        size,
        f"{model.num_classes} classes" if is_classifier else "no classifier head (backbone)",
    )
    return LoadedTeacher(model.eval(), pre, None, is_classifier, f"{arch} + {weights}")


def _model_img_size(model: nn.Module) -> int:
    pe = getattr(model, "patch_embed", None)
    size = getattr(pe, "img_size", None)
    if size is not None:
        return int(size[0] if isinstance(size, (tuple, list)) else size)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    return int(cfg.get("input_size", (3, 224, 224))[-1])

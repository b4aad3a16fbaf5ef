"""Build timm ViTs by name, from a model card, and load weights into them with clear errors.

Short names map to the standard timm ViTs (``vit_tiny`` -> ``vit_tiny_patch16_224`` ...). Overrides
(img_size, patch_size, depth, num_heads, embed_dim, in_chans) make small-input models from any ViT name.
Weights never come from the internet here: ``pretrained`` is always False.
"""

from __future__ import annotations

import difflib
import logging
from typing import Any

import timm
import torch
from torch import nn

from compress.errors import CheckpointError, ModelError
from tinymim.card import ModelCard

log = logging.getLogger(__name__)

SHORT_NAMES = {
    "vit_tiny": "vit_tiny_patch16_224",
    "vit_small": "vit_small_patch16_224",
    "vit_base": "vit_base_patch16_224",
    "vit_large": "vit_large_patch16_224",
}
# Keys of arch_kwargs that are passed straight to timm.create_model.
ARCH_KEYS = ("img_size", "patch_size", "depth", "num_heads", "embed_dim", "in_chans", "num_classes", "global_pool")


def resolve_arch(name: str) -> str:
    """Short name or timm ViT name -> timm name; unknown names raise ModelError with close matches."""
    if name in SHORT_NAMES:
        return SHORT_NAMES[name]
    known = timm.list_models("vit_*")
    if name in known:
        return name
    close = difflib.get_close_matches(name, list(SHORT_NAMES) + known, n=5, cutoff=0.5)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    raise ModelError(
        f"unknown architecture '{name}'. Use one of {', '.join(SHORT_NAMES)} or a timm ViT name "
        f"(timm.list_models('vit_*')).{hint}"
    )


def create_model(
    arch: str,
    *,
    num_classes: int,
    img_size: int,
    in_chans: int,
    patch_size: int | None = None,
    depth: int | None = None,
    num_heads: int | None = None,
    embed_dim: int | None = None,
    drop_path_rate: float = 0.0,
    global_pool: str = "avg",
    **kw: Any,
) -> tuple[nn.Module, dict[str, Any]]:
    """A randomly initialised timm ViT and the ``arch_kwargs`` that rebuild it (for the model card).

    ``drop_path_rate`` is a training setting, so it is not stored in ``arch_kwargs``. With
    ``global_pool='avg'`` timm adds ``fc_norm`` (the MAE fine-tune head: mean of patch tokens -> LayerNorm -> fc).
    """
    name = resolve_arch(arch)
    arch_kwargs: dict[str, Any] = {
        "num_classes": int(num_classes),
        "img_size": int(img_size),
        "in_chans": int(in_chans),
        "global_pool": global_pool,
    }
    for key, value in (
        ("patch_size", patch_size),
        ("depth", depth),
        ("num_heads", num_heads),
        ("embed_dim", embed_dim),
    ):
        if value is not None:
            arch_kwargs[key] = int(value)
    arch_kwargs.update(kw)
    _check_geometry(name, arch_kwargs)
    try:
        model = timm.create_model(name, pretrained=False, drop_path_rate=drop_path_rate, **arch_kwargs)
    except (TypeError, ValueError, AssertionError, RuntimeError) as err:
        raise ModelError(f"cannot build {name} with {arch_kwargs}: {err}") from None
    return model, arch_kwargs


def _check_geometry(name: str, kw: dict[str, Any]) -> None:
    patch = kw.get("patch_size")
    if patch is not None and kw["img_size"] % patch != 0:
        raise ModelError(f"img_size {kw['img_size']} is not divisible by patch_size {patch}; pick a divisor")
    width, heads = kw.get("embed_dim"), kw.get("num_heads")
    if width is not None and heads is not None and width % heads != 0:
        raise ModelError(f"embed_dim {width} is not divisible by num_heads {heads}")


def set_block_heads(block: nn.Module, heads: int) -> None:
    """Re-split one timm ViT block's attention into ``heads`` heads (weights are unchanged).

    qkv is Linear(C, 3*A) whatever the head count, so only ``num_heads``, ``head_dim = A / heads`` and
    ``scale = head_dim ** -0.5`` change. Raises ModelError when A is not divisible by ``heads``.
    """
    attn = getattr(block, "attn", None)
    if attn is None or not hasattr(attn, "num_heads"):
        raise ModelError(f"{type(block).__name__} has no multi-head attention to re-split")
    width = getattr(attn, "attn_dim", attn.num_heads * attn.head_dim)
    if heads <= 0 or width % heads != 0:
        raise ModelError(
            f"cannot split attention width {width} into {heads} heads: the width must be divisible by the head count"
        )
    attn.num_heads = heads
    attn.head_dim = width // heads
    attn.scale = attn.head_dim**-0.5


def build_from_card(card: ModelCard, *, drop_path_rate: float = 0.0) -> nn.Module:
    """Rebuild the architecture a card describes (random weights), honouring ``distilled_block_heads``."""
    kw = dict(card.arch_kwargs)
    kw.setdefault("num_classes", card.num_classes)
    num_classes, img_size, in_chans = kw.pop("num_classes"), kw.pop("img_size"), kw.pop("in_chans")
    model, _ = create_model(
        card.arch, num_classes=num_classes, img_size=img_size, in_chans=in_chans, drop_path_rate=drop_path_rate, **kw
    )
    if card.distilled_block_heads:
        set_block_heads(model.blocks[-1], int(card.distilled_block_heads))
    return model


def head_keys(model: nn.Module) -> set[str]:
    """Parameter names of the classifier head of ``model`` (empty when it has none)."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(head, nn.Module):
        return set()
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)] for p in head.parameters() if id(p) in names}


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], *, strict_arch: bool = True) -> dict[str, Any]:
    """Copy ``state_dict`` into ``model``; returns a report ``{"head_reset": bool, "pos_embed_resized": bool}``.

    - position embeddings of another grid are resampled (timm ``resample_abs_pos_embed``, bicubic);
    - when only the classifier head differs in shape (class count), the head keeps its fresh init
      and a warning says so;
    - otherwise missing / unexpected / mis-shaped keys raise CheckpointError listing them
      (with ``strict_arch=False`` missing and unexpected keys are only logged).
    """
    from timm.layers import resample_abs_pos_embed

    target = model.state_dict()
    sd = dict(state_dict)
    report = {"head_reset": False, "pos_embed_resized": False}
    if "pos_embed" in sd and "pos_embed" in target and sd["pos_embed"].shape != target["pos_embed"].shape:
        prefix = 0 if getattr(model, "no_embed_class", False) else getattr(model, "num_prefix_tokens", 1)
        old_n, new_n = sd["pos_embed"].shape[1] - prefix, target["pos_embed"].shape[1] - prefix
        old_g, new_g = int(round(old_n**0.5)), int(round(new_n**0.5))
        if (
            old_g * old_g == old_n
            and new_g * new_g == new_n
            and sd["pos_embed"].shape[2] == target["pos_embed"].shape[2]
        ):
            sd["pos_embed"] = resample_abs_pos_embed(
                sd["pos_embed"], [new_g, new_g], [old_g, old_g], num_prefix_tokens=prefix
            )
            log.info("resized position embeddings from a %dx%d to a %dx%d grid", old_g, old_g, new_g, new_g)
            report["pos_embed_resized"] = True
    missing = sorted(k for k in target if k not in sd)
    unexpected = sorted(k for k in sd if k not in target)
    mis_shaped = sorted(k for k in sd if k in target and tuple(sd[k].shape) != tuple(target[k].shape))
    head = head_keys(model)
    head_mismatch = [k for k in mis_shaped if k in head]
    body_mismatch = [k for k in mis_shaped if k not in head]
    head_missing = [k for k in missing if k in head]  # e.g. a backbone saved with num_classes=0
    missing = [k for k in missing if k not in head]
    if body_mismatch or (strict_arch and (missing or unexpected)):
        lines = []
        if missing:
            lines.append(f"missing keys ({len(missing)}): {_short(missing)}")
        if unexpected:
            lines.append(f"unexpected keys ({len(unexpected)}): {_short(unexpected)}")
        if body_mismatch:
            lines.append(
                "mis-shaped keys: "
                + _short(
                    [f"{k} checkpoint {tuple(sd[k].shape)} vs model {tuple(target[k].shape)}" for k in body_mismatch]
                )
            )
        raise CheckpointError(
            "checkpoint does not fit the model architecture:\n  "
            + "\n  ".join(lines)
            + "\nCheck --arch and the size overrides (img_size, patch_size, depth, num_heads, embed_dim, in_chans)."
        )
    if missing or unexpected:
        log.warning(
            "loading non-strictly: %d missing keys %s, %d unexpected keys %s",
            len(missing),
            _short(missing),
            len(unexpected),
            _short(unexpected),
        )
    if head_missing and not head_mismatch:
        log.warning(
            "the checkpoint has no classifier head (%s); the head is freshly initialised for %d classes",
            ", ".join(head_missing),
            _num_classes(model),
        )
        report["head_reset"] = True
    if head_mismatch:
        log.warning(
            "classifier head shape differs (%s); the head is re-initialised for %d classes",
            ", ".join(f"{k} {tuple(sd[k].shape)}->{tuple(target[k].shape)}" for k in head_mismatch),
            _num_classes(model),
        )
        for k in head:
            sd.pop(k, None)
        report["head_reset"] = True
    model.load_state_dict(sd, strict=False)
    return report


def _num_classes(model: nn.Module) -> int:
    return int(getattr(model, "num_classes", -1))


def _short(items: list[str], n: int = 8) -> str:
    return ", ".join(items[:n]) + (f", ... (+{len(items) - n} more)" if len(items) > n else "")

"""Early-stopped query/key/value extraction from a timm VisionTransformer.

Relation distillation (docs/METHOD.md section 1) needs only one block's q, k, v. This module runs the
embedding, the blocks before ``block`` and, in ``block`` itself, only ``norm1`` and ``attn.qkv`` (plus
timm's optional per-head q/k norm). Nothing after that is computed, which is where the speed-up over
the reference implementation (full teacher forward with materialised attention maps) comes from.

timm computes attention with fused SDPA, so attention probabilities never exist as tensors;
``compress.losses.relation`` builds the relations from the q, k, v returned here.
"""

from __future__ import annotations

import torch
from torch import nn

from compress.distill.errors import DistillError

QKV = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def transformer_blocks(model: nn.Module) -> nn.Sequential | None:
    """The model's ``blocks`` if it is a timm ViT-style transformer whose blocks have ``attn.qkv``."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, (nn.Sequential, nn.ModuleList)) or len(blocks) == 0:
        return None
    if not all(
        hasattr(b, "norm1") and isinstance(getattr(getattr(b, "attn", None), "qkv", None), nn.Linear) for b in blocks
    ):
        return None
    for name in ("patch_embed", "_pos_embed"):
        if not hasattr(model, name):
            return None
    return blocks  # type: ignore[return-value]


def is_transformer(model: nn.Module) -> bool:
    """True for timm VisionTransformer-like models (those ``extract_qkv`` supports)."""
    return transformer_blocks(model) is not None


def embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Patch embedding + class/register tokens + position embedding, exactly as ``forward_features``.

    x: (B, C, H, W) -> tokens (B, N, D).
    """
    x = model.patch_embed(x)
    x = model._pos_embed(x)
    x = model.patch_drop(x)
    return model.norm_pre(x)


def block_qkv(block: nn.Module, x: torch.Tensor) -> QKV:
    """q, k, v of one block for its input tokens x (B, N, D); each (B, M, N, d) with M = attn.num_heads.

    q, k, v = split(norm1(x) @ W_qkv) per head; timm's q_norm / k_norm are applied when the block has them
    (Identity otherwise), so these are the exact tensors the block's attention uses.
    """
    attn = block.attn
    b, n, _ = x.shape
    qkv = attn.qkv(block.norm1(x))  # (B, N, 3 * M * d)
    heads = attn.num_heads
    qkv = qkv.reshape(b, n, 3, heads, qkv.shape[-1] // (3 * heads)).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # each (B, M, N, d)
    q_norm, k_norm = getattr(attn, "q_norm", None), getattr(attn, "k_norm", None)
    if q_norm is not None:
        q = q_norm(q)
    if k_norm is not None:
        k = k_norm(k)
    return q, k, v


def extract_qkv(model: nn.Module, x: torch.Tensor, block: int = -1) -> QKV:
    """Run ``model`` up to block ``block`` (0-based, negative counts from the end) and return its q, k, v.

    Blocks after ``block`` and the rest of ``block`` (attention output, MLP) are not run.
    x: (B, C, H, W) -> q, k, v each (B, M, N, d).
    """
    blocks = transformer_blocks(model)
    if blocks is None:
        raise DistillError(
            f"{type(model).__name__} has no transformer blocks with a qkv projection; relation distillation "
            "needs a timm VisionTransformer (use --method logits for CNN teachers)"
        )
    depth = len(blocks)
    index = block + depth if block < 0 else block
    if not 0 <= index < depth:
        raise DistillError(f"target block {block} is out of range for a {depth}-block model (valid: 0..{depth - 1})")
    tokens = embed(model, x)
    for blk in list(blocks)[:index]:
        tokens = blk(tokens)
    return block_qkv(blocks[index], tokens)

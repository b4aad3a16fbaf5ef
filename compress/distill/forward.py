"""Forward passes that run a network only as far as the chosen methods need.

``needs`` is a subset of {"qkv", "tokens", "logits"}:
  qkv    -> (q, k, v) of block ``index`` (norm1 + qkv only; nothing later is run)
  tokens -> (B, N, D) output of block ``index`` (before the final norm)
  logits -> (B, K) classifier output of the whole network
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from compress.distill.qkv import block_qkv, embed, transformer_blocks


def partial_forward(model: nn.Module, x: torch.Tensor, index: int, needs: set[str] | frozenset[str]) -> dict[str, Any]:
    """Run ``model`` on x (B, C, H, W) only as far as ``needs`` requires, around block ``index`` (0-based).

    Non-transformer models (e.g. a timm ResNet) support only "logits" (a plain forward).
    """
    blocks = transformer_blocks(model)
    out: dict[str, Any] = {}
    if blocks is None:
        out["logits"] = model(x)
        return out
    h = embed(model, x)
    for blk in list(blocks)[:index]:
        h = blk(h)
    if "qkv" in needs:
        out["qkv"] = block_qkv(blocks[index], h)
    if "tokens" in needs or "logits" in needs:
        h = blocks[index](h)
        out["tokens"] = h
    if "logits" in needs:
        for blk in list(blocks)[index + 1 :]:
            h = blk(h)
        out["logits"] = model.forward_head(model.norm(h))
    return out

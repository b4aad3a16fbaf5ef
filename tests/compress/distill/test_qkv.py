"""The early-stopped teacher returns exactly the q, k, v a full forward pass computes."""

from __future__ import annotations

import pytest
import torch

from compress.distill.errors import DistillError
from compress.distill.qkv import extract_qkv, is_transformer


def _hooked_qkv(model, x, block):
    captured = {}
    attn = model.blocks[block].attn
    handle = attn.qkv.register_forward_hook(lambda m, i, o: captured.setdefault("qkv", o))
    with torch.no_grad():
        model(x)
    handle.remove()
    b, n, _ = captured["qkv"].shape
    qkv = captured["qkv"].reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    return qkv.unbind(0)


@pytest.mark.parametrize("block", [0, 2, 3, -1])
def test_extract_equals_hooked_full_forward(block, make_vit):
    model = make_vit(depth=4, num_heads=6, in_chans=3).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        got = extract_qkv(model, x, block)
    want = _hooked_qkv(model, x, block)
    for g, w in zip(got, want, strict=True):
        assert g.shape == (2, 6, 17, 8)
        assert torch.equal(g, w)


def test_later_blocks_are_not_run(make_vit):
    model = make_vit(depth=4).eval()
    ran = []
    for i, blk in enumerate(model.blocks):
        blk.register_forward_hook(lambda m, inp, out, i=i: ran.append(i))
    model.norm.register_forward_hook(lambda m, inp, out: ran.append("norm"))
    extract_qkv(model, torch.randn(1, 1, 16, 16), 1)
    assert ran == [0]  # block 1 runs only norm1 + qkv, never its forward


def test_out_of_range_and_non_transformer(make_vit):
    model = make_vit(depth=2)
    with pytest.raises(DistillError, match="out of range"):
        extract_qkv(model, torch.randn(1, 1, 16, 16), 2)
    import timm

    resnet = timm.create_model("resnet10t", pretrained=False, num_classes=10)
    assert not is_transformer(resnet) and is_transformer(model)
    with pytest.raises(DistillError, match="logits"):
        extract_qkv(resnet, torch.randn(1, 3, 32, 32))

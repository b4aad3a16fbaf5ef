"""compress.models: names, overrides, head re-splitting, weight loading with clear errors."""

from __future__ import annotations

import logging

import pytest
import torch
from timm.layers import resample_abs_pos_embed

from compress.errors import CheckpointError, ModelError
from compress.models import build_from_card, create_model, load_weights, resolve_arch, set_block_heads
from tinymim.card import ModelCard, Preprocess

TINY = dict(patch_size=4, depth=2, embed_dim=32, num_heads=2)


def test_short_names_and_close_matches() -> None:
    assert resolve_arch("vit_tiny") == "vit_tiny_patch16_224"
    assert resolve_arch("vit_small") == "vit_small_patch16_224"
    assert resolve_arch("vit_base_patch16_224") == "vit_base_patch16_224"
    with pytest.raises(ModelError, match="Close matches: .*vit_tiny"):
        resolve_arch("vit_tiyn")


def test_create_model_overrides_and_mae_head() -> None:
    model, kw = create_model("vit_small", num_classes=7, img_size=16, in_chans=1, **TINY)
    assert kw == {"num_classes": 7, "img_size": 16, "in_chans": 1, "global_pool": "avg", **TINY}
    assert len(model.blocks) == 2 and model.embed_dim == 32 and model.blocks[0].attn.num_heads == 2
    assert model.global_pool == "avg" and not isinstance(model.fc_norm, torch.nn.Identity)  # GAP + fc_norm
    assert model(torch.randn(3, 1, 16, 16)).shape == (3, 7)
    with pytest.raises(ModelError, match="not divisible by patch_size"):
        create_model("vit_tiny", num_classes=2, img_size=18, in_chans=1, patch_size=4)


def test_set_block_heads_keeps_weights_and_changes_the_split() -> None:
    model, _ = create_model(
        "vit_tiny", num_classes=2, img_size=16, in_chans=1, patch_size=4, depth=2, embed_dim=48, num_heads=3
    )
    block = model.blocks[-1]
    before = {k: v.clone() for k, v in block.state_dict().items()}
    x = torch.randn(2, 17, 48)
    y3 = block.attn(x)
    set_block_heads(block, 6)
    assert (block.attn.num_heads, block.attn.head_dim) == (6, 8) and block.attn.scale == pytest.approx(8**-0.5)
    assert all(torch.equal(before[k], v) for k, v in block.state_dict().items())
    assert not torch.allclose(block.attn(x), y3)  # a different head split is a different function
    with pytest.raises(ModelError, match="width 48 into 5 heads"):
        set_block_heads(block, 5)


def test_build_from_card_honours_distilled_block_heads() -> None:
    _, kw = create_model("vit_tiny", num_classes=0, img_size=16, in_chans=1, **TINY)
    card = ModelCard(
        "vit_tiny_patch16_224",
        kw,
        Preprocess((1, 16, 16), (0.5,), (0.5,)),
        (),
        task="backbone",
        distilled_block_heads=4,
    )
    model = build_from_card(card)
    assert [b.attn.num_heads for b in model.blocks] == [2, 4]
    bad = card.replace(distilled_block_heads=3)
    with pytest.raises(ModelError, match="divisible"):
        build_from_card(bad)


def test_load_weights_reports_missing_unexpected_and_misshaped_keys() -> None:
    src, _ = create_model("vit_tiny", num_classes=10, img_size=16, in_chans=1, **TINY)
    deeper, _ = create_model("vit_tiny", num_classes=10, img_size=16, in_chans=1, **{**TINY, "depth": 3})
    with pytest.raises(CheckpointError, match=r"missing keys \(12\): blocks\.2\.") as err:
        load_weights(deeper, src.state_dict())
    assert "--arch" in str(err.value)
    wider, _ = create_model("vit_tiny", num_classes=10, img_size=16, in_chans=1, **{**TINY, "embed_dim": 64})
    with pytest.raises(
        CheckpointError,
        match=r"mis-shaped keys: blocks\.0\.attn\.proj\.bias checkpoint \(32,\) vs model \(64,\).*more\)",
    ):
        load_weights(wider, src.state_dict())
    shallower, _ = create_model("vit_tiny", num_classes=10, img_size=16, in_chans=1, **{**TINY, "depth": 1})
    with pytest.raises(CheckpointError, match="unexpected keys"):
        load_weights(shallower, src.state_dict())


def test_class_count_change_resets_head_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    src, _ = create_model("vit_tiny", num_classes=10, img_size=16, in_chans=1, **TINY)
    dst, _ = create_model("vit_tiny", num_classes=3, img_size=16, in_chans=1, **TINY)
    head_before = dst.head.weight.clone()
    with caplog.at_level(logging.WARNING):
        report = load_weights(dst, src.state_dict())
    assert report == {"head_reset": True, "pos_embed_resized": False}
    assert "re-initialised for 3 classes" in caplog.text
    assert torch.equal(dst.head.weight, head_before)
    assert torch.equal(dst.blocks[1].mlp.fc2.weight, src.blocks[1].mlp.fc2.weight)


def test_pos_embed_is_resampled_for_another_input_size() -> None:
    src, _ = create_model("vit_tiny", num_classes=10, img_size=16, in_chans=1, **TINY)  # 4x4 grid
    dst, _ = create_model("vit_tiny", num_classes=10, img_size=32, in_chans=1, **TINY)  # 8x8 grid
    report = load_weights(dst, src.state_dict())
    assert report["pos_embed_resized"]
    expected = resample_abs_pos_embed(src.pos_embed.detach(), [8, 8], [4, 4], num_prefix_tokens=1)
    assert torch.allclose(dst.pos_embed, expected)
    assert torch.equal(dst.pos_embed[:, 0], src.pos_embed[:, 0])  # class token position kept
    assert dst(torch.randn(1, 1, 32, 32)).shape == (1, 10)

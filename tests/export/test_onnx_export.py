"""ONNX export: dynamic batch really dynamic, one LayerNormalization per LayerNorm, metadata, clear failures."""

from __future__ import annotations

import collections

import onnx
import pytest
import timm
import torch

from export.errors import ConversionError
from export.onnx_export import (
    artifact_metadata,
    check_batches,
    check_graph,
    export_onnx,
    read_metadata,
    verify_onnx,
)

SHAPE = (1, 32, 32)


@pytest.fixture(scope="module")
def tiny_vit():
    torch.manual_seed(0)
    return timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=32,
        patch_size=8,
        depth=2,
        embed_dim=64,
        num_heads=2,
        in_chans=1,
        num_classes=10,
        global_pool="avg",
    ).eval()


def test_check_batches():
    assert check_batches(32) == (1, 7, 32)
    assert check_batches(8) == (1, 7, 8)
    assert check_batches(4) == (1, 3, 4)
    assert check_batches(1) == (1,)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_export_is_dynamic_and_matches_torch(tiny_vit, tmp_path, exporter):
    meta = artifact_metadata("tiny", [str(i) for i in range(10)], {"input_size": [1, 32, 32]})
    path = export_onnx(tiny_vit, tmp_path / "m.onnx", input_shape=SHAPE, max_batch=8, exporter=exporter, metadata=meta)
    model = onnx.load(str(path))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    ops = collections.Counter(n.op_type for n in model.graph.node)
    assert ops["LayerNormalization"] == 2 * 2 + 1  # norm1, norm2 per block + fc_norm: never decomposed
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    diffs = verify_onnx(path, tiny_vit, input_shape=SHAPE, max_batch=8)
    assert set(diffs) == {"batch_1", "batch_7", "batch_8"}
    assert max(diffs.values()) < 1e-4
    got = read_metadata(path)
    assert got["tinymim.labels"] == '["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]'
    assert got["tinymim.output"] == "logits"


def test_baked_batch_is_refused(tiny_vit, tmp_path):
    path = tmp_path / "baked.onnx"
    torch.onnx.export(
        tiny_vit,
        (torch.randn(2, *SHAPE),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["logits"],
    )  # no dynamic axes: batch 2 baked in
    with pytest.raises(ConversionError, match="batch dimension is fixed"):
        check_graph(path, input_shape=SHAPE)


def test_wrong_shape_against_card_is_refused(tiny_vit, tmp_path):
    path = export_onnx(tiny_vit, tmp_path / "m.onnx", input_shape=SHAPE, max_batch=4)
    with pytest.raises(ConversionError, match="differs from the model card"):
        check_graph(path, input_shape=(3, 32, 32))


class _DataDependent(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # Python branch on a tensor value: torch.export cannot trace it
            return x.flatten(1)
        return -x.flatten(1)


def test_failure_inside_torch_is_a_clear_error(tmp_path):
    with pytest.raises(ConversionError, match="torch.onnx export .* failed"):
        export_onnx(_DataDependent(), tmp_path / "x.onnx", input_shape=SHAPE, max_batch=4, exporter="dynamo")

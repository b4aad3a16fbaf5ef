"""Bad input stops with a clear error before any training step."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
from safetensors.torch import save_file

from compress.distill.errors import AlignmentError, DistillError, NormalizationError
from compress.distill.run import run_distill
from compress.errors import CheckpointError, DataError
from tinymim.errors import ConfigError


def _no_training(cfg) -> None:
    assert not (Path(cfg.output) / "metrics.jsonl").exists()


def _save(model, path: Path) -> str:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path)


def test_teacher_weights_that_do_not_fit(tiny_distill, tmp_path, make_vit):
    weights = _save(make_vit(depth=2, embed_dim=48, num_heads=3, in_chans=3), tmp_path / "w.safetensors")
    cfg = tiny_distill(
        teacher="vit_tiny",
        teacher_weights=weights,
        teacher_mean=(0.5,) * 3,
        teacher_std=(0.5,) * 3,
        teacher_img_size=16,
    )
    with pytest.raises(
        CheckpointError, match=r"(?s)do not fit vit_tiny_patch16_224.*missing keys \(120\): blocks\.10\."
    ) as err:
        run_distill(cfg)
    assert "mis-shaped" in str(err.value)  # 48 wide vs vit_tiny's 192
    _no_training(cfg)


def test_timm_teacher_without_normalisation_asks(tiny_distill, tmp_path, make_vit):
    weights = _save(make_vit(), tmp_path / "w.safetensors")
    with pytest.raises(NormalizationError, match="--teacher-mean and --teacher-std"):
        run_distill(tiny_distill(teacher="vit_tiny", teacher_weights=weights))


def test_relation_with_cnn_teacher_suggests_logits(tiny_distill, tmp_path):
    resnet = timm.create_model("resnet10t", pretrained=False, num_classes=10, in_chans=1)
    weights = _save(resnet, tmp_path / "r.safetensors")
    for method in ("relation", "feature"):
        cfg = tiny_distill(
            teacher="resnet10t",
            teacher_weights=weights,
            teacher_mean=(0.3,),
            teacher_std=(0.35,),
            teacher_img_size=16,
            student_patch_size=4,
            method=method,
        )
        with pytest.raises(DistillError, match="use --method logits"):
            run_distill(cfg)
        _no_training(cfg)


def test_target_block_out_of_range(tiny_distill):
    cfg = tiny_distill(teacher_block=3)
    with pytest.raises(DistillError, match="out of range.*2 blocks"):
        run_distill(cfg)
    _no_training(cfg)


def test_unalignable_student(tiny_distill):
    cfg = tiny_distill(student_embed_dim=30, student_num_heads=3)  # 30 % 4 teacher heads != 0
    with pytest.raises(AlignmentError, match="width 30 is not divisible by the teacher's 4 heads"):
        run_distill(cfg)
    _no_training(cfg)


def test_token_count_mismatch(tiny_distill):
    with pytest.raises(DistillError, match="token counts"):
        run_distill(tiny_distill(student_patch_size=8))


def test_empty_dataset(tiny_distill, tmp_path):
    (tmp_path / "data" / "cat").mkdir(parents=True)
    (tmp_path / "data" / "dog").mkdir(parents=True)
    with pytest.raises(DataError):
        run_distill(tiny_distill(data=str(tmp_path / "data")))


def test_config_errors(tiny_distill):
    with pytest.raises(ConfigError, match="valid choices"):
        tiny_distill(method="relations")
    with pytest.raises(ConfigError, match="1-based"):
        tiny_distill(teacher_block=0)
    with pytest.raises(ConfigError, match="unknown config key"):
        tiny_distill(learning_rate=1.0)


def test_logits_needs_a_classifier_teacher(tiny_distill, tmp_path):
    first = run_distill(tiny_distill(output=str(tmp_path / "backbone")))  # a backbone (task "backbone")
    with pytest.raises(DistillError, match="no classifier head"):
        run_distill(tiny_distill(teacher=str(first), method="logits", output=str(tmp_path / "x")))


def test_existing_run_needs_resume(tiny_distill):
    cfg = tiny_distill()
    run_distill(cfg)
    with pytest.raises(DistillError, match="--resume"):
        run_distill(cfg)

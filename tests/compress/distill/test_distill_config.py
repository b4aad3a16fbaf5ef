"""``tinymim distill`` configuration: YAML with a chain of stages, flags over YAML, strict keys."""

from __future__ import annotations

import argparse

import pytest

from compress.commands.distill import add_arguments
from compress.distill.config import DistillConfig, stage_configs
from tinymim.configio import build_config, config_from_args
from tinymim.errors import ConfigError

YAML = """
teacher: runs/teacher
method: relation
epochs: 7
output: runs/chain
stages:
  - {student: vit_small, student_embed_dim: 96}
  - {student: vit_tiny, epochs: 3}
"""


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(DistillConfig, parser.parse_args(argv))


def test_yaml_chain_and_flag_override(tmp_path):
    path = tmp_path / "distill.yaml"
    path.write_text(YAML)
    cfg = _parse(["--config", str(path), "--batch-size", "32"])
    assert cfg.batch_size == 32 and cfg.epochs == 7 and len(cfg.stages) == 2
    first, second = stage_configs(cfg)
    assert first.teacher == "runs/teacher" and first.student == "vit_small" and first.student_embed_dim == 96
    assert first.output == "runs/chain/stage1_vit_small" and first.epochs == 7
    assert second.teacher == "runs/chain/stage1_vit_small" and second.epochs == 3 and second.batch_size == 32
    assert second.student_embed_dim is None  # each stage = top-level keys + its own overrides (not cumulative)


def test_cli_flags_and_defaults():
    cfg = _parse(["--teacher", "runs/t", "--method", "relation:1,logits:0.5", "--teacher-mean", "0.5,0.5,0.5"])
    assert cfg.teacher_mean == (0.5, 0.5, 0.5) and cfg.warmup == pytest.approx(5.0)  # 5% of 100 epochs
    assert cfg.batch_size == 256 and cfg.base_lr == 1.5e-3 and cfg.drop_path == 0.1 and cfg.crop_scale_min == 0.2


def test_strict_keys_in_stages_and_top_level():
    with pytest.raises(ConfigError, match="unknown config key 'studnet'"):
        stage_configs(build_config(DistillConfig, dict(teacher="t", stages=({"studnet": "vit_tiny"},))))
    with pytest.raises(ConfigError, match="may not set"):
        build_config(DistillConfig, dict(teacher="t", stages=({"teacher": "x"},)))
    with pytest.raises(ConfigError, match="no teacher"):
        build_config(DistillConfig, {})

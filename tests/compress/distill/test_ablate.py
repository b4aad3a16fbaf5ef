"""The ablation runs every method at the same budget, fine-tunes each identically and writes its report."""

from __future__ import annotations

import json

import pytest

from compress.commands.ablate import AblateConfig, run_config
from compress.configio import build_config
from tinymim.errors import ConfigError


def test_tiny_ablation_writes_table_json_and_chart(teacher_ckpt, tmp_path):
    cfg = build_config(
        AblateConfig,
        dict(
            teacher=str(teacher_ckpt),
            student="vit_tiny",
            student_depth=2,
            student_embed_dim=32,
            student_num_heads=2,
            limit_train=64,
            limit_val=40,
            methods=("scratch", "relation", "logits"),
            budget=1,
            finetune_epochs=1,
            batch_size=16,
            finetune_augment=False,
            amp="off",
            device="cpu",
            progress=False,
            output=str(tmp_path / "abl"),
        ),
    )
    result = run_config(cfg)
    assert [r["method"] for r in result.rows] == ["scratch", "relation", "logits"]
    assert result.teacher_top1 is not None and 0 <= result.teacher_top1 <= 100
    out = tmp_path / "abl"
    data = json.loads((out / "ablation.json").read_text())
    assert {r["method"] for r in data["rows"]} == {"scratch", "relation", "logits"}
    assert data["order_checks"]["relation > scratch"] in (True, False)
    assert data["order_checks"]["relation > feature"] is None  # feature was not run
    md = (out / "ablation.md").read_text()
    assert "| relation |" in md and "teacher (reference)" in md
    assert (out / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    # the same fine-tuning for every method: identical fine-tune configs apart from init/output
    import yaml

    cfgs = [yaml.safe_load((out / m / "finetune" / "config.yaml").read_text()) for m in ("scratch", "relation")]
    for c in cfgs:
        c.pop("init"), c.pop("output")
    assert cfgs[0] == cfgs[1]


def test_unknown_method_is_a_config_error(teacher_ckpt):
    with pytest.raises(ConfigError, match="valid choices: scratch, cls_token, feature, relation, logits"):
        build_config(AblateConfig, dict(teacher=str(teacher_ckpt), methods=("relation", "mae")))

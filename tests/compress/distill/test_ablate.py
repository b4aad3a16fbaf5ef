"""The label-scarce ablation: distil once per (arm, seed) on the pool, fine-tune per labelled subset, report the
mean and spread over seeds; reruns reuse finished runs and refuse folders made with other settings."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from compress.distill.ablation import Setting, plan, run_ablation
from compress.distill.ablation_report import summarise
from compress.distill.config import AblateConfig
from compress.distill.errors import DistillError
from tests.compress.conftest import COLORS, write_image
from tinymim.configio import build_config
from tinymim.errors import ConfigError


@pytest.fixture
def pool(tmp_path):
    """48 unlabelled images (a flat folder)."""
    colors = list(COLORS.values())
    for i in range(48):
        write_image(tmp_path / "pool" / f"{i}.png", colors[i % 3], size=16, noise_seed=i)
    return tmp_path / "pool"


def _cfg(teacher, tmp_path, **kw) -> AblateConfig:
    values = dict(
        teacher=str(teacher),
        student="vit_tiny",
        student_depth=2,
        student_embed_dim=32,
        student_num_heads=2,
        labelled=(12,),
        val_split=0.25,
        methods=("scratch", "scratch_compute", "relation"),
        seeds=(0, 1),
        budget=1,
        finetune_epochs=(1,),
        batch_size=16,
        finetune_batch_size=4,
        finetune_augment=False,
        amp="off",
        device="cpu",
        progress=False,
        output=str(tmp_path / "abl"),
    )
    values.update(kw)
    return build_config(AblateConfig, values)


def test_label_scarce_ablation_runs_every_arm_and_seed_and_reports_the_spread(
    teacher_ckpt, pool, color_folder, tmp_path
):
    cfg = _cfg(teacher_ckpt, tmp_path, data=str(pool), labelled_data=str(color_folder))
    result = run_ablation(cfg)
    out = tmp_path / "abl"
    assert [r["arm"] for r in result.rows] == ["scratch", "scratch_compute", "relation"]
    for r in result.rows:
        assert r["seeds"] == [0, 1] and len(r["top1"]) == 2 and r["labelled"] == 12
        assert r["mean"] == pytest.approx(sum(r["top1"]) / 2)
    assert result.settings["pool_size"] == 48 and result.teacher_top1 is None  # other classes than the data's
    # distilled once per (arm, seed) on the unlabelled pool, then fine-tuned on the labelled subset
    pre = yaml.safe_load((out / "pretrain" / "relation" / "seed1" / "config.yaml").read_text())
    assert (pre["data"], pre["seed"], pre["epochs"]) == (str(pool), 1, 1)
    # scratch twin: same subset and epochs as the fine-tunes; scratch_compute: distillation + fine-tune image-steps
    twin = yaml.safe_load((out / "n12" / "scratch" / "seed0" / "config.yaml").read_text())
    ft = yaml.safe_load((out / "n12" / "relation" / "seed0" / "config.yaml").read_text())
    long = yaml.safe_load((out / "n12" / "scratch_compute" / "seed0" / "config.yaml").read_text())
    assert (twin["data"], twin["limit_train"], twin["epochs"], twin["seed"]) == (
        ft["data"],
        ft["limit_train"],
        ft["epochs"],
        0,
    )
    assert ft["init"] == str(out / "pretrain" / "relation" / "seed0") and twin["init"] is None
    assert long["epochs"] == math.ceil((1 * 48 + 1 * 12) / 12)
    # the final score is the last checkpoint on the whole validation set (6 of the 24 colour images)
    final = json.loads((out / "n12" / "relation" / "seed0" / "final_eval.json").read_text())
    assert final["n"] == 6 and final["top1"] == result.row("relation", 12)["top1"][0]
    data = json.loads((out / "ablation.json").read_text())
    gain = result.row("relation", 12)
    paired = [a - b for a, b in zip(gain["top1"], result.row("scratch", 12)["top1"], strict=True)]
    assert data["rows"][2]["gain"] == pytest.approx(sum(paired) / 2)
    md = (out / "ablation.md").read_text()
    assert "| relation |" in md and " ± " in md
    assert "n=12: relation > feature" in data["checks"] and (out / "ablation.png").read_bytes()[:4] == b"\x89PNG"

    # a rerun reuses every finished run (nothing retrains) ...
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("metrics.jsonl")}
    assert run_ablation(cfg).rows == result.rows
    assert {p: p.stat().st_mtime_ns for p in out.rglob("metrics.jsonl")} == stamps
    # ... augmentation values that augment: false switches off do not count (runs saved before the recipes
    # stored them as null are reused) ...
    twin_cfg = out / "n12" / "scratch" / "seed0" / "config.yaml"
    saved = yaml.safe_load(twin_cfg.read_text())
    assert saved["augment"] is False
    twin_cfg.write_text(yaml.safe_dump({**saved, "mixup": 0.8, "crop_scale_min": 0.08, "label_smoothing": 0.1}))
    assert run_ablation(cfg).rows == result.rows
    assert {p: p.stat().st_mtime_ns for p in out.rglob("metrics.jsonl")} == stamps
    # ... but do when augmentation was on
    twin_cfg.write_text(yaml.safe_dump({**saved, "augment": True, "mixup": 0.8}))
    with pytest.raises(DistillError, match=r"made with other settings \(augment, mixup\)"):
        run_ablation(cfg)
    twin_cfg.write_text(yaml.safe_dump(saved))
    # ... and refuses to reuse folders made with other settings
    with pytest.raises(DistillError, match=r"made with other settings \(epochs\)"):
        run_ablation(
            _cfg(teacher_ckpt, tmp_path, data=str(pool), labelled_data=str(color_folder), finetune_epochs=(2,))
        )


def test_plan_distils_once_per_arm_and_seed_with_soft_labels_only(teacher_ckpt, tmp_path):
    cfg = _cfg(
        teacher_ckpt,
        tmp_path,
        methods=(),
        labelled=(100, 500),
        finetune_epochs=(30, 10),
        seeds=(0, 1, 2),
        logits_weight=0.5,
    )
    student = dict(arch="vit_tiny_patch16_224", img_size=16, patch_size=4, in_chans=1, mean=(0.3,), std=(0.35,))
    runs = plan(cfg, Setting(student, 6000, (100, 500), True, 80.0))
    distills = [r for r in runs if r.kind == "distill"]
    assert [r.arm for r in distills[:5]] == ["logits", "feature", "cls_token", "relation", "relation+logits"]
    assert len(distills) == 5 * 3 and len(runs) == 15 + 7 * 3 * 2
    both = next(r for r in distills if r.arm == "relation+logits" and r.seed == 2)
    assert (both.values["method"], both.values["alpha"], both.values["data"]) == (
        "relation:1,logits:0.5",
        1.0,
        "builtin:fashion-mnist",
    )
    fts = [r for r in runs if r.kind == "train" and r.arm == "relation+logits" and r.seed == 2]
    assert [r.values["init"] for r in fts] == [both.values["output"]] * 2  # one distillation, two subsets
    assert [(r.values["limit_train"], r.epochs) for r in fts] == [(100, 30), (500, 10)]
    long = next(r for r in runs if r.arm == "scratch_compute" and r.labelled == 500)
    assert long.epochs == math.ceil((1 * 6000 + 10 * 500) / 500)


def test_summary_gain_is_paired_by_seed():
    scores = [
        {"arm": "scratch", "labelled": 10, "seed": 0, "top1": 70.0, "epochs": 3},
        {"arm": "scratch", "labelled": 10, "seed": 1, "top1": 60.0, "epochs": 3},
        {"arm": "relation", "labelled": 10, "seed": 0, "top1": 74.0, "epochs": 3},
        {"arm": "relation", "labelled": 10, "seed": 1, "top1": 62.0, "epochs": 3},
        {"arm": "feature", "labelled": 10, "seed": 0, "top1": 71.0, "epochs": 3},
    ]
    result = summarise(scores, 80.0, {"seeds": [0, 1]})
    rel = result.row("relation", 10)
    assert (rel["mean"], rel["gain"]) == (68.0, 3.0) and rel["gain_sd"] == pytest.approx(2**0.5)
    assert result.row("scratch", 10)["gain"] is None
    assert result.checks == {
        "n=10: relation >= scratch twin + 3": True,
        "n=10: relation > feature": False,
        "n=10: relation > cls_token": None,
    }


def test_logits_arms_need_a_classifier_teacher(tiny_distill, tmp_path):
    from compress.distill.run import run_distill as distill

    backbone = distill(tiny_distill(output=str(tmp_path / "backbone"), limit_train=32))
    with pytest.raises(DistillError, match=r"arms \['logits'\].*no classifier head"):
        run_ablation(_cfg(backbone, tmp_path, methods=("relation", "logits")))


@pytest.mark.parametrize(
    ("where", "error"),
    [
        ("pool", r"--data .*pool is an unlabelled folder.*--labelled-data"),
        ("labelled", r"--labelled-data .*pool has no class folders, so there is nothing to fine-tune"),
        ("too_many", r"labelled subsets \[19\] exceed the 18 labelled training images of .*; lower --labelled"),
    ],
)
def test_refusals_before_any_run(teacher_ckpt, pool, color_folder, tmp_path, where, error):
    data = {
        "pool": dict(data=str(pool)),
        "labelled": dict(data=str(pool), labelled_data=str(pool)),
        "too_many": dict(data=str(pool), labelled_data=str(color_folder), labelled=(12, 19)),
    }[where]
    with pytest.raises(DistillError, match=error):
        run_ablation(_cfg(teacher_ckpt, tmp_path, **data))
    assert not list((tmp_path / "abl").glob("*/*"))  # no run folder was started


def test_config_errors(teacher_ckpt):
    with pytest.raises(ConfigError, match="valid choices: scratch, scratch_compute, logits, feature"):
        build_config(AblateConfig, dict(teacher=str(teacher_ckpt), methods=("relation", "mae")))
    with pytest.raises(ConfigError, match="distinct --seeds"):
        build_config(AblateConfig, dict(teacher=str(teacher_ckpt), seeds=(1, 1)))
    with pytest.raises(ConfigError, match="one per labelled subset"):
        build_config(AblateConfig, dict(teacher=str(teacher_ckpt), labelled=(1, 2), finetune_epochs=(3, 4, 5)))
    with pytest.raises(ConfigError, match="key=value"):
        build_config(AblateConfig, dict(teacher=str(teacher_ckpt), train_overrides=("mixup",)))

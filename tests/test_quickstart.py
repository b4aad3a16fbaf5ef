"""End to end: the README's main command at the `tiny` scale, with real outcomes checked.

Only what cannot depend on the CPU is asserted: what each stage trained on, that the summary's figures are
consistent with the stages' own results, the FP32 gate, and HTTP answers equal to the runtime's. Which model
scores higher is what the `cpu` scale shows (BENCHMARKS.md); tiny training cannot guarantee an ordering.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tinymim.configio import build_config
from tinymim_cli.quickstart import run_config
from tinymim_cli.quickstart_config import SCALES, QuickstartConfig

pytestmark = pytest.mark.slow
STAGES = {"teacher", "distill", "finetune", "scratch", "export", "serve"}
TINY = SCALES["tiny"]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    out = tmp_path_factory.mktemp("qs")
    cfg = build_config(
        QuickstartConfig,
        {"out": str(out), "size": "tiny", "seed": 3, "bench_seconds": 1.0, "http_images": 48, "progress": False},
    )
    return cfg, run_config(cfg)


def _config(root: str, stage: str) -> dict:
    return yaml.safe_load((Path(root) / stage / "config.yaml").read_text())


def test_each_model_trained_on_what_the_setting_says(quickstart):
    cfg, summary = quickstart
    st = summary["setting"]
    assert st["teacher_labelled_images"] == TINY["teacher"]["limit_train"]
    assert st["pool_images"] == TINY["distill"]["limit_train"]
    assert st["pool_labels_used"] is False  # the logits term learns soft labels only (alpha 1)
    assert st["method"] == TINY["distill"]["method"]
    assert st["labelled_images"] == TINY["labelled"]["limit_train"] < st["pool_images"]
    n_test = TINY["test"]["limit"]  # the same class-balanced part of the test split for all three models
    assert st["test_images"] == n_test
    for row in ("teacher", "student", "scratch_twin"):
        assert summary[row]["test_images"] == n_test
    assert summary["teacher"]["test_top1"] > 25.0  # 10 classes: chance is 10%; the tiny teacher reaches ~50%
    student, twin = summary["student"], summary["scratch_twin"]
    assert twin["size"] == student["size"] and twin["params"] == student["params"]
    assert twin["labelled_images"] == student["labelled_images"] and twin["epochs"] == student["epochs"]
    # the same labelled images with the same budget: same data, subset size, seed, epochs and batch
    ft, sc = _config(cfg.out, "finetune"), _config(cfg.out, "scratch")
    for key in ("data", "limit_train", "seed", "epochs", "batch_size"):
        assert ft[key] == sc[key], key
    assert ft["seed"] == 3 and ft["init"].endswith("distill/last") and sc["init"] is None
    assert _config(cfg.out, "distill")["alpha"] == 1.0


def test_summary_figures_agree_with_the_stages(quickstart):
    cfg, summary = quickstart
    stages = {p.parent.name: json.loads(p.read_text())["result"] for p in Path(cfg.out).glob("*/stage.json")}
    assert set(stages) == STAGES
    t, s, z = (stages[k]["test_top1"] for k in ("teacher", "finetune", "scratch"))
    assert summary["teacher"]["test_top1"] == t and summary["student"]["test_top1"] == s
    assert summary["scratch_twin"]["test_top1"] == z
    assert summary["gain_points"] == pytest.approx(s - z)
    assert summary["teacher_minus_student_points"] == pytest.approx(t - s)
    ratio = stages["teacher"]["params"] / stages["finetune"]["params"]
    assert summary["param_reduction"] == pytest.approx(ratio) and ratio >= 4.0
    checks = summary["checks"]
    assert checks["student_above_scratch_twin"] == (s > z)
    assert checks["teacher_above_student_by_2_points"] == (t - s >= 2.0)
    assert checks["student_within_3_points_of_teacher"] == (t - s <= 3.0)
    assert checks["student_4x_fewer_parameters"] is True
    lat = summary["teacher"]["pytorch_b1_ms"] / summary["student"]["pytorch_b1_ms"]
    assert summary["speedup_pytorch_b1"] == pytest.approx(lat)
    md = Path(summary["summary_md"]).read_text()
    for text in ("| teacher |", "| distilled student |", "| scratch twin |", f"{summary['gain_points']:+.2f} points"):
        assert text in md, text


def test_every_gate_passes_for_fp32(quickstart):
    cfg, summary = quickstart
    servable = [a for a in summary["artifacts"] if a["servable"]]
    assert any(a["name"] == "onnx-fp32" for a in servable)
    for a in servable:
        assert a["gate"]["agreement"] >= 0.98, a
    # Whether an INT8 artifact passes depends on this CPU's integer kernels; either way the quickstart finishes
    # and every artifact it did not ship says why.
    assert all(a["servable"] or a["reason"] for a in summary["artifacts"])
    assert summary["served"]["artifact"] in {a["name"] for a in servable}


def test_http_answers_match_runtime(quickstart):
    cfg, summary = quickstart
    served = summary["served"]
    # The server forms its own batches, unlike the direct check. auto serves only artifacts whose gate found each
    # image's logits the same alone and in any batch (FP32, static INT8), so the answers must match exactly.
    assert served["http_vs_runtime_agreement"] == 100.0
    assert served["levels"] and all(lv["p50_ms"] > 0 for lv in served["levels"])


def test_outputs_written_and_rerun_reuses_stages(quickstart):
    cfg, summary = quickstart
    root = Path(cfg.out)
    for rel in (
        "summary.md",
        "summary.json",
        "summary.png",
        "teacher/curves.png",
        "teacher/eval/confusion.png",
        "finetune/eval/eval.json",
        "scratch/eval/eval.json",
        "export/bundle/bundle.json",
        "serve/bench_cdf.png",
    ):
        assert (root / rel).is_file(), rel
    stages_before = {p.parent.name: json.loads(p.read_text()) for p in root.glob("*/stage.json")}
    again = run_config(cfg)
    assert again["gain_points"] == summary["gain_points"]
    stages_after = {p.parent.name: json.loads(p.read_text()) for p in root.glob("*/stage.json")}
    assert stages_after == stages_before  # nothing was redone (no wall-clock bound: that would depend on the CPU)

"""End to end: the README's main command at the `tiny` scale, with real outcomes checked."""

from __future__ import annotations

import json

import pytest

from tinymim.configio import build_config
from tinymim_cli.quickstart import run_config
from tinymim_cli.quickstart_config import QuickstartConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    out = tmp_path_factory.mktemp("qs")
    cfg = build_config(
        QuickstartConfig, {"out": str(out), "size": "tiny", "bench_seconds": 1.0, "http_images": 48, "progress": False}
    )
    return cfg, run_config(cfg)


def test_student_learns_and_every_gate_passes(quickstart):
    cfg, summary = quickstart
    assert summary["student"]["test_top1"] > 50.0  # 10 classes: chance is 10%
    assert summary["teacher"]["params"] > 2 * summary["student"]["params"]
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
    assert served["http_top1"] > 50.0
    assert served["levels"] and all(lv["p50_ms"] > 0 for lv in served["levels"])


def test_outputs_written_and_rerun_reuses_stages(quickstart):
    cfg, summary = quickstart
    root = cfg.out
    from pathlib import Path

    for rel in (
        "summary.md",
        "summary.json",
        "accuracy_vs_latency.png",
        "teacher/curves.png",
        "export/bundle/bundle.json",
        "serve/bench_cdf.png",
    ):
        assert (Path(root) / rel).is_file(), rel
    stages_before = {p.parent.name: json.loads(p.read_text()) for p in Path(root).glob("*/stage.json")}
    assert set(stages_before) == {"teacher", "distill", "finetune", "export", "serve"}
    again = run_config(cfg)
    assert again["student"]["test_top1"] == summary["student"]["test_top1"]
    stages_after = {p.parent.name: json.loads(p.read_text()) for p in Path(root).glob("*/stage.json")}
    assert stages_after == stages_before  # nothing was redone (no wall-clock bound: that would depend on the CPU)

"""benchmarks/gpu_smoke.py without a GPU: a clear "no GPU here" report, written where BENCHMARKS.md expects it.

The script runs with CUDA_VISIBLE_DEVICES="" so that even on a GPU machine this test stays the fast no-GPU case
(the driver then reports no device); the GPU run itself is `make gpu-check`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.benchmark_scripts import REPO, benchmark_script, load_benchmark

SCRIPT = benchmark_script("gpu_smoke")


def test_no_gpu_here_report(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    out, results = tmp_path / "out", tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--results", str(results)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((out / "gpu_smoke.json").read_text())
    assert report["gpu"] is False and report["verdict"].startswith("no GPU here: ")
    assert any(word in report["verdict"] for word in ("driver", "GPU", "libcuda"))
    parts = {r["part"]: r for r in report["parts"]}
    assert parts["environment"]["status"] == "ok" and report["failed"] == []
    for model in ("vit_tiny", "vit_small"):
        for step in ("train", "export", "serve", "timing"):
            assert parts[f"{model}/{step}"]["status"] == "skipped"
            assert parts[f"{model}/{step}"]["reason"].startswith("no GPU here")
    for fmt in ("onnx-cuda-fp16", "tensorrt-fp16", "tensorrt-int8"):  # each names what is missing
        assert parts[f"build {fmt}"]["status"] == "skipped" and parts[f"build {fmt}"]["reason"]
    env_report = report["environment"]
    assert env_report["torch"]["version"] and env_report["onnxruntime"]["providers"]
    assert env_report["tensorrt"]["ok"] is False and env_report["tensorrt"]["reason"]
    md = (out / "gpu_smoke.md").read_text()
    assert "**no GPU here: " in md and "### vit_tiny" not in md  # no per-model results without a GPU
    section = (results / "gpu_smoke.md").read_text()
    assert section.startswith("## GPU smoke check\n\nNot run on a GPU yet.") and "no GPU here" in section


def test_a_cpu_run_never_replaces_a_recorded_gpu_run(tmp_path):
    smoke = load_benchmark("gpu_smoke")
    (tmp_path / "gpu_smoke.json").write_text(json.dumps({"gpu": True}))
    (tmp_path / "gpu_smoke.md").write_text("## GPU smoke check\n\nfigures from an H100\n")
    no_gpu = {"gpu": False, "started_utc": "now", "verdict": "no GPU here: test"}
    assert "kept the recorded GPU run" in smoke.write_section(no_gpu, "ignored", tmp_path)
    assert (tmp_path / "gpu_smoke.md").read_text().endswith("figures from an H100\n")
    gpu = {"gpu": True, "started_utc": "now", "verdict": "ran on a GPU"}
    smoke.write_section(gpu, "## GPU smoke check\n\nnew figures\n", tmp_path)
    assert "new figures" in (tmp_path / "gpu_smoke.md").read_text()
    assert json.loads((tmp_path / "gpu_smoke.json").read_text())["verdict"] == "ran on a GPU"

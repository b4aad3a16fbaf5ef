"""benchmarks/runtime_latency.py's reading of its own figures: which INT8 it calls the best, the Amdahl bound, and
that a run keeps the other models' entries. Figures here are hand-made (no timing is measured or asserted)."""

from __future__ import annotations

import json

import pytest

from tests.benchmark_scripts import load_benchmark


def _acc(delta, accurate=True, independent=True):
    return {
        "top1": 80.0 + delta,
        "delta_pts": delta,
        "agreement": 99.0,
        "cos_min": 0.999,
        "batch_rel_diff": 0.0 if independent else 1e-2,
        "batch_flips": 0,
        "gate_checks": {"accuracy": accurate, "batch_independence": independent},
    }


def _entry():
    fp32, ship, fast, dyn = (
        "ORT FP32 (onnxslim graph)",
        "static (shipped recipe)",
        "static, everything INT8",
        "dynamic INT8",
    )
    profile = {
        fp32: {"run_ms_median": 100.0, "op_ms": {"MatMul": 80.0, "Add": 20.0}},
        ship: {"run_ms_median": 60.0, "op_ms": {"MatMulIntegerToFloat": 20.0, "MatMul": 25.0, "Add": 15.0}},
    }
    return {
        "checkpoint": "/nowhere/run",
        "arch": "vit_tiny_patch16_224 {}",
        "input_size": [3, 224, 224],
        "train_commands": [],
        "reference_top1": 80.0,
        "eval_images": 100,
        "calib_images": 16,
        "fp32_baseline": fp32,
        "accuracy": {
            "PyTorch eager": _acc(0.0),
            fp32: _acc(0.0),
            ship: _acc(-0.2),
            fast: _acc(-3.0, accurate=False),  # the fastest static one fails accuracy
            dyn: _acc(0.0, independent=False),  # and dynamic is batch-dependent
        },
        "latency_ms": {
            "PyTorch eager": {"1": 20.0, "8": 120.0},
            fp32: {"1": 10.0, "8": 100.0},
            ship: {"1": 6.0, "8": 60.0},
            fast: {"1": 4.0, "8": 40.0},
            dyn: {"1": 4.0, "8": 45.0},
        },
        "profile_batch8": profile,
        "meta": {
            "machine": {"cpu": "x", "cores": "1", "avx512_vnni": "False", "avx_vnni": "False"},
            "tools": {"torch": "t", "onnxruntime": "o"},
            "command": "python benchmarks/runtime_latency.py --checkpoint /nowhere/run",
            "threads": 1,
            "repeats": 3,
            "loadavg_1min_before_after": [0.0, 0.0],
            "when": "today",
        },
    }


def test_summary_names_the_fastest_int8_that_passes_every_check():
    text = load_benchmark("runtime_latency").render({"m": _entry()})
    row = next(line for line in text.splitlines() if line.startswith("| m |"))
    # shipped: 100/60; the faster static one fails accuracy, dynamic fails batch independence
    assert row == (
        "| m | 224x224x3 | 80.00 | 1.67x, -0.20, passes | static (shipped recipe): 1.67x, -0.20 | "
        "2.22x, +0.00, fails batch independence |"
    )
    assert "static, everything INT8 | 77.00 | -3.00 | 99.0 | 0.0e+00 | fails accuracy |" in text
    assert "target >= 2x FP32 with <= 0.5 points loss: missed" in text


def test_amdahl_bound_is_fp32_kernel_time_over_the_float_remainder():
    line = load_benchmark("runtime_latency")._amdahl(
        _entry()["profile_batch8"]["ORT FP32 (onnxslim graph)"], _entry()["profile_batch8"]["static (shipped recipe)"]
    )
    # integer GEMMs 20 of 60 ms; float remainder 40 ms; FP32 kernels 100 ms -> at most 2.50x
    assert "integer GEMMs take 20.0 of 60.0 ms" in line and "takes 40.0 ms" in line and "at most 2.50x" in line


def test_render_only_rewrites_the_section_from_the_json(tmp_path):
    rl = load_benchmark("runtime_latency")
    (tmp_path / "runtime_latency.json").write_text(json.dumps({"results": {"a": _entry(), "b": _entry()}}))
    assert rl.main(["--render-only", "--results", str(tmp_path)]) == 0
    md = (tmp_path / "runtime_latency.md").read_text()
    assert "### a:" in md and "### b:" in md and md.count("Command: `python benchmarks/runtime_latency.py") == 2


def test_unknown_recipe_key_is_refused_with_the_known_ones():
    with pytest.raises(SystemExit, match="unknown --recipes \\['nope'\\]; known: all-int8-requant"):
        load_benchmark("runtime_latency").static_recipes(True, ("nope",))

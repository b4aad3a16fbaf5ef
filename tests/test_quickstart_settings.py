"""The quickstart's settings and its summary arithmetic, without training anything.

The end-to-end run is tests/test_quickstart.py (slow); these check what every scale promises before any
minute is spent: each stage's values build a valid config, the student is 4x+ smaller than its teacher, the
scratch twin shares the fine-tuned student's labelled budget, every value a `cpu` figure depends on is written
down (not left to a command default), and the summary's figures are the stages' own numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compress.distill.config import DistillConfig
from compress.engine import cpu_has_native_bf16
from compress.eval_config import EvalConfig
from compress.train_config import TrainConfig
from tinymim.configio import build_config
from tinymim_cli.quickstart_config import DATA, SCALES, QuickstartConfig
from tinymim_cli.quickstart_summary import summarize
from tinymim_cli.quickstart_training import scale_models, teacher_amp


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("scale", sorted(SCALES))
def test_every_stage_builds_a_valid_config(scale, tmp_path):
    s = SCALES[scale]
    run = str(tmp_path)  # the configs only check that an --init/--teacher/checkpoint folder exists
    build_config(TrainConfig, {"data": DATA, **s["teacher"]})
    build_config(DistillConfig, {"data": DATA, "teacher": run, "alpha": 1.0, **s["distill"]})
    build_config(TrainConfig, {"data": DATA, "init": run, **s["labelled"], **s["finetune"]})
    build_config(TrainConfig, {"data": DATA, **s["labelled"], **s["scratch"]})
    build_config(EvalConfig, {"checkpoint": run, "data": DATA, **s["test"]})


@pytest.mark.parametrize("scale", ["tiny", "cpu"])
def test_student_is_4x_smaller_than_its_teacher(scale):
    teacher, student = scale_models(scale)
    assert _params(teacher) / _params(student) >= 4.0
    if scale == "cpu":  # the sizes BENCHMARKS.md reports
        assert (round(_params(teacher) / 1e6, 2), round(_params(student) / 1e6, 2)) == (3.18, 0.61)


def test_cpu_scale_is_the_measured_label_scarce_setting():
    cpu = SCALES["cpu"]
    assert cpu["teacher"]["limit_train"] is None and cpu["distill"]["limit_train"] is None  # all 60,000 images
    assert cpu["distill"]["method"] == "relation:1,logits:1"
    assert cpu["labelled"]["limit_train"] == 3000 and cpu["labelled"]["epochs"] == 7
    assert cpu["test"]["limit"] is None  # the whole test split
    # The scratch twin and the fine-tuned student share every labelled-budget value ("labelled"); only the
    # optimiser recipe differs (fine-tune: lower lr with layer decay; scratch: its own best lr, no decay).
    assert set(cpu["finetune"]) == set(cpu["scratch"]) - {"augment"}
    assert cpu["labelled"]["augment"] is False and cpu["scratch"]["augment"] is False
    # Every value the figures depend on is pinned here, so a changed command default cannot move them.
    for stage, keys in (
        ("teacher", {"lr", "epochs", "batch_size", "warmup_epochs", "augment", "layer_decay", "drop_path"}),
        ("distill", {"base_lr", "epochs", "batch_size", "warmup_epochs", "temperature", "crop_scale_min"}),
        ("finetune", {"lr", "layer_decay", "drop_path", "weight_decay"}),
        ("scratch", {"lr", "layer_decay", "drop_path", "weight_decay", "augment"}),
    ):
        assert keys <= set(cpu[stage]), (stage, keys - set(cpu[stage]))


def test_teacher_amp_follows_the_flag_and_the_cpu():
    assert teacher_amp(QuickstartConfig(amp="off")) == "off"
    assert teacher_amp(QuickstartConfig(amp="bf16")) == "bf16"
    assert teacher_amp(QuickstartConfig(amp="auto", device="cuda")) == "auto"  # resolve_amp picks bf16/fp16
    # auto on a CPU: bf16 only where it is computed natively (elsewhere it is emulated, slower than fp32)
    assert teacher_amp(QuickstartConfig(amp="auto")) == ("bf16" if cpu_has_native_bf16() else "off")
    for stage in ("teacher", "distill"):  # the flag decides, never a value pinned in a scale's table
        assert all("amp" not in SCALES[scale][stage] for scale in SCALES)


def test_native_bf16_detection_agrees_with_the_cpu_flags():
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo to compare with (not Linux)")
    flags = set(cpuinfo.read_text().split())
    assert cpu_has_native_bf16() == bool({"avx512_bf16", "amx_tile"} & flags)


def _facts(params: int, top1: float, images: int, epochs: int, **extra) -> dict:
    size = {"img_size": 28, "in_chans": 1, "patch_size": 7, "depth": 3, "embed_dim": 128, "num_heads": 2}
    return {"size": size, "params": params, "train_images": images, "epochs": epochs, "test_top1": top1,
            "test_images": 10000, **extra}  # fmt: skip


def test_summary_figures_are_the_stages_numbers():
    results = {
        "teacher": _facts(3_200_000, 84.0, 60000, 1),
        "distill": {
            **_facts(610_000, 77.5, 60000, 1),
            "pool_images": 60000,
            "labels_used": False,
            "method": "relation:1,logits:1",
        },  # fmt: skip
        "finetune": _facts(610_000, 80.5, 1000, 20),
        "scratch": _facts(610_000, 74.0, 1000, 20),
        "export": {"artifacts": [{"name": "onnx-int8", "latency_ms": {"1": 0.5, "32": 4.0}}]},
        "serve": {"artifact": "onnx-int8"},
    }
    s = summarize(results, {"teacher": 4.0, "student": 1.0})
    assert s["gain_points"] == pytest.approx(6.5)
    assert s["teacher_minus_student_points"] == pytest.approx(3.5)
    assert s["param_reduction"] == pytest.approx(3_200_000 / 610_000)
    assert s["speedup_pytorch_b1"] == pytest.approx(4.0)
    assert s["speedup_served_b1"] == pytest.approx(8.0) and s["served_artifact_b1_ms"] == 0.5
    assert s["checks"] == {
        "teacher_above_student_by_2_points": True,
        "student_above_scratch_twin": True,
        "student_within_3_points_of_teacher": False,
        "student_4x_fewer_parameters": True,
    }
    assert s["setting"] == {
        "teacher_labelled_images": 60000,
        "pool_images": 60000,
        "pool_labels_used": False,
        "method": "relation:1,logits:1",
        "distill_epochs": 1,
        "labelled_images": 1000,
        "finetune_epochs": 20,
        "test_images": 10000,
    }
    assert s["student"]["pool_images"] == 60000 and s["scratch_twin"]["labelled_images"] == 1000

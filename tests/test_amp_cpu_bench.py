"""benchmarks/amp_cpu.py: it times the quickstart's own models, both modes, on one and the same step."""

from __future__ import annotations

import torch

from tests.benchmark_scripts import load_benchmark


def test_models_are_the_quickstart_cpu_sizes():
    bench = load_benchmark("amp_cpu")
    found = {
        name: (round(sum(p.numel() for p in m.parameters()) / 1e6, 2), batch)
        for name, (m, batch) in bench.models().items()
    }
    assert found == {"teacher": (3.18, 128), "student": (0.61, 64)}  # the sizes BENCHMARKS.md reports


def test_time_steps_trains_in_both_modes():
    bench = load_benchmark("amp_cpu")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    before = model[1].weight.detach().clone()
    sec = bench.time_steps(model, batch=4, rounds=1, steps=1)
    assert set(sec) == {"fp32", "bf16"} and all(s > 0 for s in sec.values())
    assert not torch.equal(model[1].weight, before)  # the steps really updated the weights

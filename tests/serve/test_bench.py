"""`tinymim bench` against a live server and offline on the bundle: report fields, JSON and the CDF PNG."""

from __future__ import annotations

import json

import pytest

from serve.bench import BenchConfig, run_bench
from tests.serve.helpers import image_bytes
from tinymim.cli import main
from tinymim.errors import ConfigError


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_online_and_offline_report(server, tiny, tmp_path, protocol):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(3):
        (imgs / f"{i}.png").write_bytes(image_bytes(i))
    cfg = BenchConfig(
        url=server.url,
        offline=str(tiny.path),
        concurrency=(1, 4),
        requests=40,
        protocol=protocol,
        images=str(imgs),
        out=str(tmp_path / "out"),
        batch_sizes=(1, 4),
        threads=1,
        warmup=2,
    )
    report = run_bench(cfg)
    levels = report["online"]["levels"]
    assert [lv["concurrency"] for lv in levels] == [1, 4]
    for lv in levels:
        assert lv["ok"] == lv["requests"] == 40 and lv["errors"] == {}
        assert 0 < lv["p50_ms"] <= lv["p90_ms"] <= lv["p99_ms"] <= lv["max_ms"] and lv["throughput_rps"] > 0
    if protocol == "v1":
        assert levels[0]["server_ms_mean"]["inference_ms"] > 0
    off = report["offline"]
    assert [b["batch_size"] for b in off["batches"]] == [1, 4] and off["best_samples_per_s"] > 0
    assert off["preprocess_per_image"]["p50_ms"] > 0
    assert set(report["overhead"]) >= {"served_p50_ms", "runtime_p50_ms", "overhead_p50_ms", "throughput_ratio"}
    saved = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert saved["online"]["levels"][1]["ok"] == 40
    assert (tmp_path / "out" / "bench_cdf.png").read_bytes()[:4] == b"\x89PNG"


def test_errors_are_counted_by_status(server, tmp_path):
    cfg = BenchConfig(url=server.url, concurrency=(2,), requests=6, protocol="v2", model="not-this-model", warmup=0)
    lv = run_bench(cfg)["online"]["levels"][0]
    assert lv["ok"] == 0 and lv["errors"] == {"404": 6} and lv["p50_ms"] is None


def test_cli_offline_and_validation(tiny, tmp_path, capsys):
    assert (
        main(
            [
                "bench",
                "--offline",
                str(tiny.path),
                "--requests",
                "5",
                "--batch-sizes",
                "1,2",
                "--threads",
                "1",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert "samples/s" in capsys.readouterr().out
    assert json.loads((tmp_path / "bench.json").read_text())["offline"]["batches"][1]["batch_size"] == 2
    with pytest.raises(ConfigError, match="URL"):
        BenchConfig(url="localhost:8000").validate()
    assert main(["bench"]) == 2

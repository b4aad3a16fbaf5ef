"""`tinymim bench`: services and a bundle's artifacts compared in one report, its table, JSON and figure."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest

from serve.bench import BenchConfig, run_bench
from serve.bench.command import add_arguments
from serve.bundle import Artifact, load_bundle, sha256_file
from tests.serve.helpers import image_bytes, start_server
from tinymim.configio import config_from_args
from tinymim.errors import ConfigError
from tinymim_cli.main import main

STAGES = ("decode", "preprocess", "queue", "compute", "encode", "total")


@pytest.fixture(scope="module")
def two_artifacts(tiny, tmp_path_factory):
    """The tiny bundle plus a real second artifact (ONNX Runtime dynamic INT8) and an engine nothing here runs."""
    from onnxruntime.quantization import quantize_dynamic

    root = tmp_path_factory.mktemp("two") / "bundle"
    shutil.copytree(tiny.path, root)
    quantize_dynamic(str(root / "model.onnx"), str(root / "model.int8.onnx"))
    (root / "model.fp16.plan").write_bytes(b"not a real engine")
    b = load_bundle(root)
    b.artifacts += [
        Artifact("onnx-int8", "model.int8.onnx", "onnx", "int8", "onnxruntime", sha256_file(root / "model.int8.onnx")),
        Artifact(
            "tensorrt-fp16", "model.fp16.plan", "tensorrt", "fp16", "tensorrt", sha256_file(root / "model.fp16.plan")
        ),
    ]
    b.save(root)
    return root


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_service_and_its_artifact_in_one_report(server, tiny, tmp_path, protocol):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(3):
        (imgs / f"{i}.png").write_bytes(image_bytes(i))
    cfg = BenchConfig(
        urls=(server.url,),
        offline=str(tiny.path),
        concurrency=(1, 4),
        requests=40,
        protocol=protocol,
        images=str(imgs),
        out=str(tmp_path / "out"),
        batch_sizes=(1, 4),
        threads=1,
        rounds=1,
        warmup=2,
    )
    report = run_bench(cfg)
    (svc,) = report["online"]
    levels = svc["levels"]
    assert [lv["concurrency"] for lv in levels] == [1, 4]
    for lv in levels:
        assert lv["ok"] == lv["requests"] == 40 and lv["errors"] == {}
        assert 0 < lv["p50_ms"] <= lv["p90_ms"] <= lv["p99_ms"] <= lv["max_ms"] and lv["throughput_rps"] > 0
        st = lv["server_stages_ms"]  # read from every answer's Server-Timing header
        assert set(st) == set(STAGES) and st["decode"] > 0 and st["compute"] > 0
        assert st["total"] >= sum(st[s] for s in STAGES[:-1]) - 1e-3 and lv["batch_size_mean"] >= 1
    assert levels[0]["batch_size_mean"] == 1  # one client: never batched with anyone
    (art,) = report["offline"]["artifacts"]
    assert [b["batch_size"] for b in art["batches"]] == [1, 4] and art["best_samples_per_s"] > 0
    assert art["cold_start_s"] > 0 and art["peak_rss_bytes"] > 10 * 2**20
    assert report["offline"]["preprocess_per_image"]["decode"]["p50_ms"] > 0
    offline_row, served_row = report["rows"]
    assert offline_row["artifact"] == served_row["artifact"] == "onnx-fp32"
    assert served_row["cold_start_s"] > 0 and served_row["peak_rss_mib"] > 10
    (over,) = report["overhead"]
    assert set(over) >= {"served_p50_ms", "runtime_p50_ms", "overhead_p50_ms", "throughput_ratio"}
    saved = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert saved["online"][0]["levels"][1]["ok"] == 40
    assert (tmp_path / "out" / "bench_cdf.png").read_bytes()[:4] == b"\x89PNG"


def test_every_artifact_compared_on_a_small_device(two_artifacts, tmp_path, capsys):
    argv = ["bench", "--offline", str(two_artifacts), "--artifacts", "all", "--requests", "6", "--rounds", "2"]
    argv += ["--batch-sizes", "1,2", "--cpus", "1", "--threads", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    report = json.loads((tmp_path / "bench.json").read_text())
    fp32, int8, trt = report["offline"]["artifacts"]
    for art in (fp32, int8):
        assert len(art["cold_start_runs_s"]) == 2 and all(c > 0 for c in art["cold_start_runs_s"])
        assert art["threads"] == 1 and len(art["cpus"]) == 1  # pinned to one CPU, as asked
        assert art["batches"][0]["iters"] == 6 and art["peak_rss_bytes"] > 0  # --requests split over the rounds
    assert (fp32["artifact"], int8["artifact"], int8["precision"]) == ("onnx-fp32", "onnx-int8", "int8")
    assert trt["artifact"] == "tensorrt-fp16" and "tensorrt" in trt["error"]  # reported, not fatal
    assert "onnx-int8 (runtime alone)" in table and "cannot run here" in table
    assert (tmp_path / "bench_cdf.png").read_bytes()[:4] == b"\x89PNG"


def test_services_compared_side_by_side(server, two_artifacts, tmp_path):
    other = start_server(two_artifacts, tmp_path, "--artifact", "onnx-int8")
    try:
        report = run_bench(BenchConfig(urls=(server.url, other.url), concurrency=(2,), requests=10, warmup=0))
    finally:
        other.stop()
    assert [s["artifact"] for s in report["online"]] == ["onnx-fp32", "onnx-int8"]
    assert [r["artifact"] for r in report["rows"]] == ["onnx-fp32", "onnx-int8"]
    assert all(s["levels"][0]["ok"] == 10 for s in report["online"])


def test_errors_are_counted_by_status(server):
    cfg = BenchConfig(urls=(server.url,), concurrency=(2,), requests=6, protocol="v2", model="not-this-model", warmup=0)
    lv = run_bench(cfg)["online"][0]["levels"][0]
    assert lv["ok"] == 0 and lv["errors"] == {"404": 6} and lv["p50_ms"] is None


def test_config_is_checked_before_any_work(tiny):
    with pytest.raises(ConfigError, match="URL"):
        BenchConfig(urls=("localhost:8000",)).validate()
    with pytest.raises(ConfigError, match="--cpus"):
        BenchConfig(offline=str(tiny.path), cpus=999).validate()
    with pytest.raises(ConfigError, match="no-such-artifact"):
        run_bench(BenchConfig(offline=str(tiny.path), artifacts=("no-such-artifact",)))
    assert main(["bench"]) == 2


def test_flags_and_yaml_go_through_the_one_config_loader(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = ["http://a:1", "http://b:2", "--concurrency", "1,4", "--duration", "3", "--protocol", "v2"]
    cfg = config_from_args(BenchConfig, parser.parse_args(argv))
    assert (cfg.urls, cfg.concurrency, cfg.duration_s, cfg.protocol) == (
        ("http://a:1", "http://b:2"),
        (1, 4),
        3.0,
        "v2",
    )
    assert (cfg.artifacts, cfg.batch_sizes, cfg.rounds) == (("auto",), (1, 2, 4, 8, 16, 32), 3)  # the defaults
    (tmp_path / "bench.yaml").write_text("urls: [http://c:3]\nrequests: 7\ntimeout_s: 5\n")
    cfg = config_from_args(
        BenchConfig, parser.parse_args(["--config", str(tmp_path / "bench.yaml"), "--requests", "9"])
    )
    assert (cfg.urls, cfg.requests, cfg.timeout_s) == (("http://c:3",), 9, 5.0)  # a flag wins over the file
    for bad, match in ((["--protocol", "v3"], "allowed values: v1, v2"), (["--rounds", "x"], "rounds")):
        with pytest.raises(ConfigError, match=match):
            config_from_args(BenchConfig, parser.parse_args(["http://a:1", *bad]))
    with pytest.raises(ConfigError, match="Did you mean: duration_s"):
        (tmp_path / "typo.yaml").write_text("durations: 3\n")
        config_from_args(BenchConfig, parser.parse_args(["http://a:1", "--config", str(tmp_path / "typo.yaml")]))

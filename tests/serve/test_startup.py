"""Start-up: settings from flags/env, validation, artifact selection, hash verification, torch-free import."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from serve.bundle import Artifact, load_bundle, sha256_file
from serve.errors import BundleError, RuntimeUnavailable
from serve.select import select_runtime
from serve.settings import load_settings
from tinymim.errors import ConfigError
from tinymim_cli.main import main


def test_settings_from_env_and_flags(tiny, monkeypatch):
    monkeypatch.setenv("TINYMIM_PORT", "9123")
    monkeypatch.setenv("TINYMIM_MAX_BATCH_SIZE", "4")
    monkeypatch.setenv("TINYMIM_API_KEY", "zq-secret-77")
    s = load_settings(bundle=tiny.path, max_batch_size=2)
    assert s.port == 9123 and s.max_batch_size == 2 and s.api_key.get_secret_value() == "zq-secret-77"
    assert "zq-secret-77" not in repr(s)  # secrets stay out of logs
    monkeypatch.setenv("TINYMIM_BUNDLE", str(tiny.path))
    assert load_settings().bundle == tiny.path


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"port": 70000}, "port"),
        ({"max_queue": 0}, "max_queue"),
        ({"max_queue_delay_ms": -1}, "max_queue_delay_ms"),
        ({"bogus": 1}, "bogus"),
        ({"device": "tpu"}, "device"),
        ({"cpus": 4096}, "cpus"),
        ({"workers": 0}, "workers"),
    ],
)
def test_settings_rejects_bad_values(tiny, kw, needle):
    with pytest.raises(ConfigError, match=needle):
        load_settings(bundle=tiny.path, **kw)


def test_cli_errors_are_exit_codes(tmp_path, tiny, monkeypatch):
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert main(["serve", str(tiny.path), "--port", "-5"]) == 2
    broken = tmp_path / "tampered"
    shutil.copytree(tiny.path, broken)
    (broken / "model.onnx").write_bytes((broken / "model.onnx").read_bytes() + b"\0")
    assert main(["serve", str(broken)]) == 1  # BundleError: hash mismatch, before the server starts


def _multi_artifact_bundle(tiny, tmp_path, *, int8_gate: bool):
    root = tmp_path / "multi"
    shutil.copytree(tiny.path, root)
    shutil.copy(root / "model.onnx", root / "model.int8.onnx")
    shutil.copy(root / "model.onnx", root / "model.fp16.plan")
    d = json.loads((root / "bundle.json").read_text())
    d["artifacts"][0]["latency_ms"] = {"1": 3.0}
    d["artifacts"].append(
        Artifact(
            "onnx-int8",
            "model.int8.onnx",
            "onnx",
            "int8",
            "onnxruntime",
            sha256_file(root / "model.int8.onnx"),
            gate={"passed": int8_gate, "checks": {"accuracy": int8_gate, "batch_independence": True}},
            latency_ms={"1": 1.5},
        ).__dict__
    )
    d["artifacts"].append(
        Artifact(
            "tensorrt-fp16",
            "model.fp16.plan",
            "tensorrt",
            "fp16",
            "tensorrt",
            sha256_file(root / "model.fp16.plan"),
            gate={"passed": True, "checks": {"accuracy": True, "batch_independence": True}},
            latency_ms={"1": 0.2},
        ).__dict__
    )
    (root / "bundle.json").write_text(json.dumps(d))
    return load_bundle(root)


def test_auto_picks_fastest_gate_passing_runnable_artifact(tiny, tmp_path, caplog):
    pytest.importorskip("onnxruntime")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here; this test covers a machine without it")
    except ImportError:
        pass
    b = _multi_artifact_bundle(tiny, tmp_path, int8_gate=True)
    sel = select_runtime(b, "auto", device="cpu", threads=1)
    assert sel.artifact.name == "onnx-int8"
    assert "tensorrt-fp16" in sel.reason and "1.5 ms" in sel.reason
    sel.runtime.close()
    b = _multi_artifact_bundle(tiny, tmp_path / "2", int8_gate=False)
    sel = select_runtime(b, "auto", device="cpu", threads=1)
    assert sel.artifact.name == "onnx-fp32" and "did not pass the accuracy gate" in sel.reason
    sel.runtime.close()
    with pytest.raises(RuntimeUnavailable, match="tensorrt-fp16"):
        select_runtime(b, "tensorrt-fp16")
    with pytest.raises(BundleError, match="has no artifact"):
        select_runtime(b, "nope")


def test_serve_help_and_app_import_do_not_import_torch():
    code = (
        "import sys\n"
        "from tinymim_cli.main import main\n"
        "try:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "help_mods = set(sys.modules)\n"
        "import serve.app, serve.command, serve.bench.command, serve.bench.run\n"
        "import serve.bench.online, serve.bench.offline\n"
        "heavy = ('torch', 'timm', 'compress', 'torchvision')\n"
        "bad = lambda mods: sorted(m for m in mods if m.split('.')[0] in heavy)\n"
        "print(bad(help_mods), bad(sys.modules), 'fastapi' in help_mods)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip().splitlines()[-1] == "[] [] False"


def test_cli_reports_an_unservable_bundle_cleanly(tiny, tmp_path, capsys):
    root = tmp_path / "trt-only"
    shutil.copytree(tiny.path, root)
    shutil.move(root / "model.onnx", root / "model.fp16.plan")
    d = json.loads((root / "bundle.json").read_text())
    d["artifacts"] = [
        Artifact(
            "tensorrt-fp16",
            "model.fp16.plan",
            "tensorrt",
            "fp16",
            "tensorrt",
            sha256_file(root / "model.fp16.plan"),
            gate={"passed": True, "checks": {"accuracy": True, "batch_independence": True}},
        ).__dict__
    ]
    (root / "bundle.json").write_text(json.dumps(d))
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    assert main(["serve", str(root), "--port", "0"]) == 1

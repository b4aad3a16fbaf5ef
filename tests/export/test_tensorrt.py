"""TensorRT: the device check runs everywhere; engine builds and the gate run only with a GPU + tensorrt."""

from __future__ import annotations

import json

import pytest

from serve.errors import RuntimeUnavailable
from serve.runtimes.tensorrt import check_device

BUILT = {"tensorrt": "10.9.0", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}


def test_engine_from_another_device_is_refused_with_rebuild_hint():
    check_device(BUILT, dict(BUILT))  # same device: fine
    with pytest.raises(RuntimeUnavailable, match="rebuild on this device") as err:
        check_device(BUILT, {**BUILT, "gpu": "NVIDIA L4", "compute_capability": "8.9"})
    assert "NVIDIA L4" in str(err.value) and "compute_capability" in str(err.value)
    with pytest.raises(RuntimeUnavailable, match="tensorrt '10.9.0' at build time, '11.0.0' here"):
        check_device(BUILT, {**BUILT, "tensorrt": "11.0.0"})


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_tensorrt_fp16_and_int8_pass_the_gate(tiny_checkpoint, tmp_path):
    from export.config import ExportConfig
    from export.pipeline import export_bundle
    from serve.bundle import load_bundle

    r = export_bundle(
        ExportConfig(
            checkpoint=str(tiny_checkpoint),
            out=str(tmp_path / "b"),
            formats=("onnx", "tensorrt-fp16", "tensorrt-int8"),
            eval_images=200,
            calib_images=64,
            max_batch=8,
            latency_repeats=2,
            triton_repo=str(tmp_path / "t"),
        )
    )
    bundle = load_bundle(r.bundle)
    for name in ("tensorrt-fp16", "tensorrt-int8"):
        a = bundle.artifact(name)
        assert a.gate["passed"], a.gate["failures"]
        assert set(a.gate["per_batch"]) == {"1", "7", "8"}
        side = json.loads((r.bundle / (a.file + ".json")).read_text())
        assert side["profile"]["max"][0] == 8 and side["profile"]["min"][0] == 1
        assert side["source_onnx_sha256"] and side["gpu"] and side["compute_capability"]
    assert (tmp_path / "t" / f"{bundle.model_name}_tensorrt_fp16" / "1" / "model.plan").is_file()


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_engine_with_mismatched_sidecar_does_not_load(tiny_checkpoint, tmp_path):
    from export.config import ExportConfig
    from export.pipeline import export_bundle
    from serve.bundle import load_bundle
    from serve.runtimes import open_runtime

    r = export_bundle(
        ExportConfig(
            checkpoint=str(tiny_checkpoint),
            out=str(tmp_path / "b"),
            formats=("tensorrt-fp16",),
            eval_images=50,
            max_batch=4,
            latency_repeats=1,
            optimise=False,
        )
    )
    bundle = load_bundle(r.bundle)
    a = bundle.artifact("tensorrt-fp16")
    side_path = r.bundle / (a.file + ".json")
    side = json.loads(side_path.read_text())
    side_path.write_text(json.dumps({**side, "gpu": "Some Other GPU"}))
    with pytest.raises(RuntimeUnavailable, match="rebuild on this device"):
        open_runtime(bundle, a)


def test_engine_from_another_tensorrt_major_says_to_build_and_serve_with_one():
    with pytest.raises(RuntimeUnavailable, match="built with TensorRT 10.x and this machine has TensorRT 11.x") as err:
        check_device(BUILT, {**BUILT, "tensorrt": "11.4.0.106"})
    assert "the `tensorrt` extra and the Dockerfile's gpu stage install the same major" in str(err.value)
    with pytest.raises(RuntimeUnavailable) as err:  # same major, other minor: the plain mismatch
        check_device(BUILT, {**BUILT, "tensorrt": "10.16.0"})
    assert "TensorRT 10.x and this machine" not in str(err.value) and "'10.16.0' here" in str(err.value)


class _FailingImport:
    """A meta-path finder that makes ``import tensorrt`` fail the way a package without its libraries does."""

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001 - importlib protocol
        if name == "tensorrt":
            raise OSError("libnvinfer.so.11: cannot open shared object file: No such file or directory")
        return None


def test_tensorrt_probe_names_the_missing_part(monkeypatch):
    import sys

    from serve.runtimes import cuda_probe
    from serve.runtimes.tensorrt import tensorrt_probe
    from tests.export.fake_tensorrt import make_fake_tensorrt

    def probe():
        tensorrt_probe.cache_clear()
        return tensorrt_probe()

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # not installed
    p = probe()
    assert not p.ok and p.reason.startswith("the tensorrt package is not installed")
    assert "NVIDIA's package index" in p.reason and "stubs" in p.reason
    monkeypatch.delitem(sys.modules, "tensorrt")
    monkeypatch.setattr(sys, "meta_path", [_FailingImport(), *sys.meta_path])
    p = probe()
    assert not p.ok and "its libraries do not load" in p.reason and "libnvinfer.so.11" in p.reason
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, _FailingImport)])
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt("11.4.0.106"))  # the package, but no GPU
    drv = cuda_probe.driver()
    p = probe()
    if not drv.ok:
        assert not p.ok and p.reason == f"TensorRT 11.4.0.106 is installed, but {drv.reason}"
    tensorrt_probe.cache_clear()

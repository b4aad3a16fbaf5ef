"""A test double of the ``tensorrt`` package, for the builder code that cannot otherwise run on a CPU machine.

TensorRT cannot be installed where only the public package index is reachable (its PyPI packages are stubs
that download the libraries from NVIDIA's index at install time), and it needs a GPU. This double implements
only the calls export/tensorrt_build.py makes, with TensorRT 11's strongly typed API by default (no
``BuilderFlag.FP16``) or TensorRT 10's weakly typed one, and checks what onnx-tensorrt checks of the file it
parses, so the tests can fail the way a first real GPU run would:

- the graph must be topologically sorted (onnx-tensorrt imports nodes in file order);
- a Conv/Gemm bias must be an activation type: an INT32 ``DequantizeLinear`` feeding it is refused with
  onnx-tensorrt's message ("only activation types allowed as input to this layer");
- a timing cache whose header names another device is refused by ``set_timing_cache(...,
  ignore_mismatch=False)`` (returns False, the config keeps no cache), like TensorRT's.

``build_serialized_network`` returns a few bytes naming the precision, or None / raises when told to.
"""

from __future__ import annotations

import types
from typing import Any

import onnx

DEVICE_TAG = b"TRT-TEST-DOUBLE-GPU:"


class _Flags:
    def __init__(self, names: list[str]) -> None:
        for i, n in enumerate(names):
            setattr(self, n, i)


class HostMemory(bytes):
    pass


class TimingCache:
    def __init__(self, blob: bytes) -> None:
        self.blob = bytes(blob)

    def serialize(self) -> HostMemory:
        return HostMemory(self.blob)


class BuilderConfig:
    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.flags: set[int] = set()
        self.cache: TimingCache | None = None
        self.profiles: list[Any] = []

    def set_memory_pool_limit(self, pool: Any, size: int) -> None:
        self.pool = (pool, size)

    def set_flag(self, flag: int) -> None:
        self.flags.add(flag)

    def add_optimization_profile(self, profile: Any) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, blob: bytes) -> TimingCache | None:
        if blob and not blob.startswith(b"TRT-"):
            return None  # unreadable bytes
        return TimingCache(blob)

    def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
        if cache.blob and not cache.blob.startswith(DEVICE_TAG) and not ignore_mismatch:
            return False
        self.cache = cache
        return True

    def get_timing_cache(self) -> TimingCache | None:
        return None if self.fake.lose_cache else self.cache


class Profile:
    def set_shape(self, name: str, lo: tuple, opt: tuple, hi: tuple) -> None:
        self.shape = (name, lo, opt, hi)


class Network:
    num_layers = 0


class OnnxParser:
    def __init__(self, network: Network, logger: Any, *, fake: Any) -> None:
        self.fake = fake
        self.errors: list[str] = []

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, i: int) -> str:
        return self.errors[i]

    def parse_from_file(self, path: str) -> bool:
        model = onnx.load(path)
        self.fake.parsed.append({"path": path, "model": model})
        g = model.graph
        known = {i.name for i in g.input} | {t.name for t in g.initializer} | {""}
        int32 = {t.name for t in g.initializer if t.data_type == onnx.TensorProto.INT32}
        producer: dict[str, onnx.NodeProto] = {}
        for node in g.node:
            for name in node.input:
                if name not in known:
                    self.errors.append(f"{node.name} ({node.op_type}): input {name} is not produced by an earlier node")
            if node.op_type in ("Conv", "Gemm") and len(node.input) > 2:
                dq = producer.get(node.input[2])
                if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in int32:
                    self.errors.append(
                        f"{node.name} ({node.op_type}): only activation types allowed as input to this layer"
                    )
            for name in node.output:
                known.add(name)
                producer[name] = node
        return not self.errors


class Builder:
    def __init__(self, logger: Any, *, fake: Any) -> None:
        self.fake = fake

    def create_network(self, flags: int = 0) -> Network:
        self.fake.network_flags = flags
        return Network()

    def create_builder_config(self) -> BuilderConfig:
        config = BuilderConfig(self.fake)
        self.fake.configs.append(config)
        return config

    def create_optimization_profile(self) -> Profile:
        return Profile()

    def build_serialized_network(self, network: Network, config: BuilderConfig) -> HostMemory | None:
        if self.fake.build == "raise":
            raise RuntimeError("TensorRT test double: builder raised (as an out-of-memory or internal error would)")
        if self.fake.build == "none":
            return None
        if config.cache is not None:
            config.cache.blob = DEVICE_TAG + b"timings"
        return HostMemory(b"engine built by the TensorRT test double")


def make_fake_tensorrt(version: str = "11.4.0.106", *, build: str = "ok", lose_cache: bool = False) -> Any:
    """A module object standing in for ``tensorrt``. build: "ok" | "none" (returns None) | "raise"."""
    fake = types.ModuleType("tensorrt")
    fake.__version__ = version
    fake.build = build
    fake.lose_cache = lose_cache
    fake.parsed = []
    fake.configs = []
    fake.float32 = "float32"
    fake.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level=2: None})
    fake.Builder = lambda logger: Builder(logger, fake=fake)
    fake.OnnxParser = lambda network, logger: OnnxParser(network, logger, fake=fake)
    fake.MemoryPoolType = _Flags(["WORKSPACE"])
    fake.NetworkDefinitionCreationFlag = _Flags(["STRONGLY_TYPED"])
    weak = int(version.split(".")[0]) < 11
    fake.BuilderFlag = _Flags(["FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS"] if weak else ["TF32"])
    fake.LayerType = _Flags(["NORMALIZATION", "SOFTMAX", "REDUCE"])
    return fake

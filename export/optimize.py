"""Graph simplification candidates for the FP32 ONNX model, kept only where measured to help.

Candidates (each must give the same logits as the exported graph, within 1e-4 relative):

- ``as-exported``: the torch.onnx output, untouched;
- ``onnxslim``: constant folding, dead-node and shape-chain removal (portable: any ONNX consumer);
- ``ort-transformers``: ONNX Runtime's transformer optimizer for ViT (fuses SkipLayerNormalization,
  BiasGelu, Attention where it matches; uses ``com.microsoft`` ops, so it is ONNX-Runtime-only).

They are timed interleaved through serve/'s ONNX Runtime wrapper at batch 1 and ``max_batch``; the one
with the lowest mean latency ratio against ``as-exported`` wins if it is at least ``min_gain`` faster,
otherwise the untouched graph stays (a 1-2 % "win" is noise on a shared machine).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from export.errors import ConversionError
from export.latency import interleaved_latency
from export.onnx_export import check_graph
from serve.runtimes.onnxruntime import OnnxRuntime

log = logging.getLogger(__name__)

PORTABLE = ("as-exported", "onnxslim")


@dataclass
class Optimisation:
    """Result of :func:`choose_graph`: the chosen file for ONNX Runtime and the portable one for TensorRT."""

    chosen: str
    chosen_path: Path
    portable: str
    portable_path: Path
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "portable_for_tensorrt": self.portable,
            "latency_ms": self.latency_ms,
            "rejected": self.rejected,
        }


def slim_graph(src: Path, dst: Path, **_: Any) -> None:
    """onnxslim: constant folding, dead-node and shape-chain removal (a portable graph)."""
    import onnxslim

    onnxslim.slim(str(src), str(dst))


def fuse_transformer_graph(src: Path, dst: Path, *, num_heads: int, hidden_size: int) -> None:
    """ONNX Runtime's transformer optimizer for ViT (com.microsoft fused ops: ONNX-Runtime-only)."""
    from onnxruntime.transformers.optimizer import optimize_model

    opt = optimize_model(str(src), model_type="vit", num_heads=num_heads, hidden_size=hidden_size)
    opt.save_model_to_file(str(dst))


_BUILDERS = {"onnxslim": slim_graph, "ort-transformers": fuse_transformer_graph}


def _session(path: Path, threads: int | None) -> Any:
    return OnnxRuntime(path, max_batch=1 << 16, threads=threads)


def choose_graph(
    exported: Path,
    work_dir: Path,
    *,
    input_shape: tuple[int, int, int],
    max_batch: int,
    num_heads: int,
    hidden_size: int,
    candidates: tuple[str, ...] = ("onnxslim", "ort-transformers"),
    min_gain: float = 0.03,
    repeats: int = 8,
    threads: int | None = None,
) -> Optimisation:
    """Build each candidate, check it, time it against the exported graph and keep the fastest."""
    work_dir.mkdir(parents=True, exist_ok=True)
    paths = {"as-exported": exported}
    rejected: dict[str, str] = {}
    for name in candidates:
        if name not in _BUILDERS:
            raise ConversionError(f"unknown graph optimisation {name!r}; choose from {', '.join(_BUILDERS)}")
        dst = work_dir / f"model.{name}.onnx"
        try:
            _BUILDERS[name](exported, dst, num_heads=num_heads, hidden_size=hidden_size)
            if name in PORTABLE:
                check_graph(dst, input_shape=input_shape)
            paths[name] = dst
        except Exception as err:  # an optimiser failing is a reason to skip it, recorded in the report
            rejected[name] = f"failed: {type(err).__name__}: {str(err)[:200]}"
            log.warning("graph optimisation %s skipped: %s", name, rejected[name])
    runtimes = {name: _session(p, threads) for name, p in paths.items()}
    _check_equivalent(runtimes, input_shape, rejected)
    for name in rejected:
        runtimes.pop(name, None)
    batches = tuple(sorted({1, max_batch}))
    latency = interleaved_latency(
        {n: r.infer for n, r in runtimes.items()}, input_shape=input_shape, batch_sizes=batches, repeats=repeats
    )
    for r in runtimes.values():
        r.close()
    ratio = {n: float(np.mean([latency[n][str(b)] / latency["as-exported"][str(b)] for b in batches])) for n in latency}

    def best(names: list[str]) -> str:
        winner = min(names, key=lambda n: ratio[n])
        return winner if ratio[winner] <= 1.0 - min_gain else "as-exported"

    chosen = best(list(latency))
    portable = best([n for n in latency if n in PORTABLE])
    for name in latency:
        if name not in (chosen, portable, "as-exported"):
            rejected[name] = f"not enough faster: {ratio[name]:.2f}x the exported graph's latency"
    log.info(
        "graph optimisation: %s for ONNX Runtime, %s for TensorRT (latency ratios %s)",
        chosen,
        portable,
        {k: round(v, 3) for k, v in ratio.items()},
    )
    return Optimisation(chosen, paths[chosen], portable, paths[portable], latency, rejected)


def _check_equivalent(runtimes: dict[str, Any], input_shape: tuple[int, int, int], rejected: dict[str, str]) -> None:
    x = np.random.default_rng(1).standard_normal((3, *input_shape), dtype=np.float32)
    ref = runtimes["as-exported"].infer(x)
    scale = float(np.abs(ref).max()) or 1.0
    for name, rt in runtimes.items():
        if name == "as-exported":
            continue
        try:
            diff = float(np.abs(rt.infer(x) - ref).max())
        except Exception as err:  # noqa: BLE001 - any runtime failure disqualifies the candidate
            rejected[name] = f"does not run: {str(err)[:200]}"
            continue
        if diff > 1e-4 * scale + 1e-5:
            rejected[name] = f"changes the logits (max abs diff {diff:.3g})"


def copy_graph(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


__all__ = ["Optimisation", "choose_graph", "copy_graph", "fuse_transformer_graph", "slim_graph"]

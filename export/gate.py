"""The accuracy gate: an artifact ships only if, run through serve/'s runtime, it answers like PyTorch.

Inputs are the evaluation images preprocessed by ``serve.preprocess.Preprocessor`` (exactly what the
service does) and the PyTorch model's fp32 logits on the same images through compress's evaluation
transform. For each batch size in ``check_batches(max_batch)`` (1, an odd batch, the max batch) the
whole set is run through ``serve.runtimes.open_runtime(bundle, artifact)`` and compared:

- ``acc_delta`` = (top-1 accuracy of the artifact - top-1 accuracy of PyTorch) x 100, in points;
- ``agreement`` = fraction of images where both predict the same class;
- ``cos_min`` / ``cos_mean`` of the cosine similarity between the two logit vectors, per image;
- ``max_abs_diff`` = max |artifact logits - PyTorch logits| over images and classes.

The verdict uses the worst value over the batch sizes. Thresholds depend on the precision
(:data:`DEFAULT_THRESHOLDS`) and can be overridden per precision ("int8.min_agreement=0.97").

A second check, **batch independence**, compares each image's logits run alone (batch 1) with the same
image inside the odd batch and the max batch (two different sets of batch-mates): a served image's answer
must not depend on which other requests the server happened to batch it with. It fails when the logits
move by more than ``max_batch_diff`` of the largest |logit|, or when an image's top-1 changes although its
top-2 margin alone was larger than that tolerance. Static INT8 (fixed scales, integer GEMMs) and FP32 pass
with ~1e-7; dynamic INT8 computes activation scales per batch and moves logits by ~1e-2, so it fails.
An artifact passes the gate only if both checks pass (``verdict["checks"]``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from export.errors import ExportError
from serve.runtimes import open_runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Thresholds:
    """Pass conditions: agreement >= min_agreement, acc_delta >= -max_acc_drop, cos_min >= min_cosine, and
    logits alone vs in a batch within max_batch_diff x the largest |logit| (batch independence)."""

    min_agreement: float
    max_acc_drop: float  # points of top-1 accuracy
    min_cosine: float
    max_batch_diff: float  # relative to the largest |logit| of the batch-1 run

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


DEFAULT_THRESHOLDS: dict[str, Thresholds] = {
    "fp32": Thresholds(min_agreement=0.999, max_acc_drop=0.1, min_cosine=0.9999, max_batch_diff=1e-4),
    "fp16": Thresholds(min_agreement=0.995, max_acc_drop=0.5, min_cosine=0.999, max_batch_diff=2e-3),
    "int8": Thresholds(min_agreement=0.98, max_acc_drop=1.0, min_cosine=0.98, max_batch_diff=1e-3),
}


def thresholds_with_overrides(overrides: tuple[str, ...] | list[str]) -> dict[str, Thresholds]:
    """Apply "precision.field=value" overrides to the defaults; bad keys or values raise ExportError."""
    out = dict(DEFAULT_THRESHOLDS)
    fields = set(Thresholds.__dataclass_fields__)
    for item in overrides:
        try:
            key, value = item.split("=", 1)
            precision, name = key.strip().split(".", 1)
            number = float(value)
        except ValueError:
            raise ExportError(f"gate override {item!r} must look like 'int8.min_agreement=0.97'") from None
        if precision not in out or name not in fields:
            raise ExportError(
                f"gate override {item!r}: precision must be one of {', '.join(out)} and the threshold one of "
                f"{', '.join(sorted(fields))}"
            )
        out[precision] = replace(out[precision], **{name: number})
    return out


def compare(logits: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Metrics of one run (N, K) against the PyTorch reference (N, K) and the true labels (N,)."""
    pred, ref_pred = logits.argmax(1), reference.argmax(1)
    num = (logits * reference).sum(1)
    den = np.linalg.norm(logits, axis=1) * np.linalg.norm(reference, axis=1)
    cos = num / np.maximum(den, 1e-12)
    finite = bool(np.isfinite(logits).all())
    return {
        "accuracy": float((pred == labels).mean()),
        "reference_accuracy": float((ref_pred == labels).mean()),
        "acc_delta": float(((pred == labels).mean() - (ref_pred == labels).mean()) * 100.0),
        "agreement": float((pred == ref_pred).mean()),
        "cos_min": float(cos.min()) if finite else float("nan"),
        "cos_mean": float(cos.mean()) if finite else float("nan"),
        "max_abs_diff": float(np.abs(logits - reference).max()) if finite else float("inf"),
    }


def run_batched(infer: Any, images: np.ndarray, batch: int) -> np.ndarray:
    """Logits of ``images`` (N, C, H, W) in chunks of ``batch`` (the last chunk may be smaller)."""
    return np.concatenate([infer(images[i : i + batch]) for i in range(0, len(images), batch)])


def batch_independence(outputs: dict[int, np.ndarray], tolerance: float) -> dict[str, Any]:
    """Do the logits of each image depend on its batch-mates? ``outputs``: {batch size: (N, K) logits}.

    The batch-1 run is the reference (each image alone). ``max_rel_diff`` is max |alone - in batch| over
    images, classes and the other batch sizes, divided by the largest |logit| alone. A changed top-1 counts
    (``decisive_flips``) only where the image's own top-2 margin alone exceeds the tolerance: a tie at that
    tolerance may go either way in any runtime.
    """
    if 1 not in outputs or len(outputs) < 2:
        return {"passed": True, "applicable": False, "tolerance": tolerance, "per_batch": {}, "failures": []}
    alone = outputs[1]
    if not np.isfinite(alone).all():
        scale, margin = float("nan"), np.zeros(len(alone))
    else:
        scale = max(float(np.abs(alone).max()), 1e-12)
        top2 = np.sort(alone, axis=1)[:, -2:] if alone.shape[1] > 1 else np.zeros((len(alone), 2))
        margin = (top2[:, 1] - top2[:, 0]) / scale
    per_batch: dict[str, dict[str, float]] = {}
    for b, out in sorted(outputs.items()):
        if b == 1:
            continue
        rel = float(np.abs(out - alone).max() / scale) if np.isfinite(out).all() else float("inf")
        flipped = out.argmax(1) != alone.argmax(1)
        per_batch[str(b)] = {
            "max_rel_diff": rel if np.isfinite(rel) else float("inf"),
            "flips": int(flipped.sum()),
            "decisive_flips": int((flipped & (margin > tolerance)).sum()),
        }
    worst_b, worst = max(per_batch.items(), key=lambda kv: (kv[1]["max_rel_diff"], kv[1]["decisive_flips"]))
    failures = []
    flips = max(m["decisive_flips"] for m in per_batch.values())
    if not worst["max_rel_diff"] <= tolerance or flips:
        failures.append(
            f"answers depend on batch-mates: logits of an image alone and inside batch {worst_b} differ by up to "
            f"{worst['max_rel_diff']:.2e} of the largest logit (tolerance {tolerance:.0e}); "
            f"{flips} of {len(alone)} images change top-1 (auto-serving needs batch-independent answers)"
        )
    return {
        "passed": not failures,
        "applicable": True,
        "tolerance": tolerance,
        "max_rel_diff": worst["max_rel_diff"],
        "decisive_flips": flips,
        "flips": max(m["flips"] for m in per_batch.values()),
        "per_batch": per_batch,
        "failures": failures,
    }


def _accuracy_failures(worst: dict[str, float], thresholds: Thresholds) -> list[str]:
    failures = []
    if not worst["agreement"] >= thresholds.min_agreement:
        failures.append(f"top-1 agreement {worst['agreement']:.4f} < {thresholds.min_agreement}")
    if not worst["acc_delta"] >= -thresholds.max_acc_drop:
        failures.append(f"top-1 accuracy drop {-worst['acc_delta']:.2f} points > {thresholds.max_acc_drop}")
    if not worst["cos_min"] >= thresholds.min_cosine:
        failures.append(f"logits cosine min {worst['cos_min']:.5f} < {thresholds.min_cosine}")
    return failures


def evaluate_runtime(
    infer: Any,
    images: np.ndarray,
    labels: np.ndarray,
    reference: np.ndarray,
    *,
    batches: tuple[int, ...],
    thresholds: Thresholds,
) -> dict[str, Any]:
    """The gate's verdict for one runtime.

    {"passed", "failures", "checks": {"accuracy", "batch_independence"}, "worst", "per_batch",
    "batch_independence", "thresholds", "images"}; ``passed`` is True only if every check passed.
    """
    per_batch: dict[str, dict[str, float]] = {}
    outputs: dict[int, np.ndarray] = {}
    for b in batches:
        try:
            outputs[b] = run_batched(infer, images, b)
        except Exception as err:  # noqa: BLE001 - a runtime error is a gate failure, reported as such
            return _refused(f"runtime error at batch {b}: {type(err).__name__}: {str(err)[:300]}", thresholds, images)
        per_batch[str(b)] = compare(outputs[b], reference, labels)
    worst = {
        "accuracy": min(m["accuracy"] for m in per_batch.values()),
        "reference_accuracy": next(iter(per_batch.values()))["reference_accuracy"],
        "acc_delta": min(m["acc_delta"] for m in per_batch.values()),
        "agreement": min(m["agreement"] for m in per_batch.values()),
        "cos_min": min(m["cos_min"] for m in per_batch.values()),
        "cos_mean": min(m["cos_mean"] for m in per_batch.values()),
        "max_abs_diff": max(m["max_abs_diff"] for m in per_batch.values()),
    }
    accuracy = _accuracy_failures(worst, thresholds)
    independence = batch_independence(outputs, thresholds.max_batch_diff)
    failures = accuracy + independence.pop("failures")
    return {
        "passed": not failures,
        "failures": failures,
        "checks": {"accuracy": not accuracy, "batch_independence": independence["passed"]},
        "worst": worst,
        "per_batch": per_batch,
        "batch_independence": independence,
        "thresholds": thresholds.to_dict(),
        "images": int(len(images)),
    }


def _refused(why: str, thresholds: Thresholds, images: np.ndarray) -> dict[str, Any]:
    """The verdict of an artifact that could not be run at all."""
    return {
        "passed": False,
        "failures": [why],
        "checks": {"accuracy": False, "batch_independence": False},
        "worst": {},
        "per_batch": {},
        "batch_independence": {},
        "thresholds": thresholds.to_dict(),
        "images": int(len(images)),
    }


def gate_artifact(
    bundle: Any,
    artifact: Any,
    images: np.ndarray,
    labels: np.ndarray,
    reference: np.ndarray,
    *,
    thresholds: Thresholds,
    batches: tuple[int, ...],
    device: str = "cpu",
) -> dict[str, Any]:
    """Open ``artifact`` with serve/'s ``open_runtime`` (hash verified) and gate it."""

    try:
        runtime = open_runtime(bundle, artifact, device=device)
    except Exception as err:  # noqa: BLE001 - a refused load (hash, device) fails the gate with its reason
        return _refused(f"cannot open with serve/ runtime: {str(err)[:300]}", thresholds, images)
    try:
        verdict = evaluate_runtime(runtime.infer, images, labels, reference, batches=batches, thresholds=thresholds)
        verdict["runtime"] = runtime.name
    finally:
        runtime.close()
    log.info(
        "gate %s: %s %s; batch-1 vs batched logits %s",
        artifact.name,
        "PASS" if verdict["passed"] else "FAIL",
        {k: round(v, 5) for k, v in verdict["worst"].items()},
        verdict["batch_independence"].get("max_rel_diff", "n/a"),
    )
    return verdict

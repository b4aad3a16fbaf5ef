"""The export pipeline: checkpoint -> artifacts -> bundle -> gate through serve/ -> latency -> report.

Order matters for failing early: the formats are checked against the machine (TensorRT, GPU) first, then
the checkpoint and the evaluation data are loaded, and only then is anything converted.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from export.config import FORMATS, ExportConfig, ExportResult
from export.errors import ToolMissing
from export.gate import gate_artifact, thresholds_with_overrides
from export.gpu_artifacts import GPU_FORMATS, build_gpu_artifacts, format_status
from export.int8_debug import layer_errors
from export.latency import interleaved_latency
from export.onnx_export import (
    INPUT_NAME,
    OUTPUT_NAME,
    artifact_metadata,
    check_batches,
    export_onnx,
    set_metadata,
    verify_onnx,
)
from export.optimize import choose_graph
from export.quantize import DEFAULT_RECIPE, preprocessed_path, quantize_dynamic_int8, quantize_static_qdq
from export.report import write_report
from export.servable import decide_servable, failed_requests
from export.source import load_eval_set, load_source, serve_inputs, torch_reference
from export.triton import write_triton_repo
from serve.bundle import Artifact, Bundle, TensorSpec, sha256_file
from serve.runtimes import default_device, open_runtime
from tinymim import __version__

log = logging.getLogger(__name__)


def resolve_formats(requested: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, str]]:
    """(formats to build, {GPU format left out: why}).

    Asking for a GPU format (ONNX Runtime CUDA, TensorRT) on a machine that cannot build it raises ToolMissing at
    once, naming the missing part; with no formats requested, every format this machine can build is built and
    the others are listed with their reasons (logged and written to the report).
    """
    status = {f: format_status(f) for f in GPU_FORMATS if not requested or f in requested}
    missing = {f: why for f, (ok, why) in status.items() if not ok}
    if requested:
        if missing:
            raise ToolMissing("; ".join(f"{f} requested, but {why}" for f, why in missing.items()))
        return tuple(f for f in FORMATS if f in requested), {}
    for f, why in missing.items():
        log.info("%s skipped: %s", f, why)
    return tuple(f for f in FORMATS if f not in missing), missing


def _model_name(cfg: ExportConfig, weights: Path) -> str:
    if cfg.model_name:
        return cfg.model_name
    folder = weights.parent
    if folder.name in ("best", "last", ".last.old"):
        folder = folder.parent
    return re.sub(r"[^A-Za-z0-9_.-]", "_", folder.resolve().name) or "model"


def _tools(extra: dict[str, str]) -> dict[str, str]:
    import onnx
    import onnxruntime
    import timm
    import torch

    tools = {
        "tinymim": __version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    for name in ("onnxscript", "onnxslim"):
        try:
            tools[name] = __import__(name).__version__
        except (ImportError, AttributeError):
            pass
    tools.update(extra)
    return tools


def _artifact(out: Path, name: str, file: str, precision: str, runtime: str, fmt: str, **kw: Any) -> Artifact:
    return Artifact(
        name=name, file=file, format=fmt, precision=precision, runtime=runtime, sha256=sha256_file(out / file), **kw
    )


def export_bundle(cfg: ExportConfig) -> ExportResult:
    formats, skipped_formats = resolve_formats(cfg.formats)
    thresholds = thresholds_with_overrides(cfg.gate)
    source = load_source(cfg.checkpoint)
    card = source.card
    evalset = load_eval_set(
        card, cfg.eval_data, eval_images=cfg.eval_images, calib_images=cfg.calib_images, seed=cfg.seed
    )
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    input_shape = tuple(card.preprocess.input_size)
    name = _model_name(cfg, source.weights)
    meta = artifact_metadata(name, list(card.labels), card.preprocess.to_dict(), source_sha256=source.sha256)
    notes: list[str] = []
    report: dict[str, Any] = {
        "model_name": name,
        "max_batch": cfg.max_batch,
        "formats": list(formats),
        "skipped_formats": skipped_formats,
        "exporter": cfg.exporter,
        "opset": cfg.opset,
    }
    artifacts: list[Artifact] = []
    device_tools: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="tinymim-export-") as tmp:
        work = Path(tmp)
        exported = export_onnx(
            source.model,
            work / "exported.onnx",
            input_shape=input_shape,
            max_batch=cfg.max_batch,
            opset=cfg.opset,
            exporter=cfg.exporter,
        )
        report["verify_onnx"] = verify_onnx(exported, source.model, input_shape=input_shape, max_batch=cfg.max_batch)
        chosen, portable = exported, exported
        if cfg.optimise:
            heads = int(getattr(source.model.blocks[0].attn, "num_heads", 1)) if hasattr(source.model, "blocks") else 1
            opt = choose_graph(
                exported,
                work / "opt",
                input_shape=input_shape,
                max_batch=cfg.max_batch,
                num_heads=heads,
                hidden_size=int(getattr(source.model, "embed_dim", 0)),
                threads=cfg.threads,
            )
            chosen, portable = opt.chosen_path, opt.portable_path
            report["graph_optimisation"] = opt.to_dict()
        shutil.copyfile(chosen, out / "model.onnx")
        set_metadata(out / "model.onnx", {**meta, "tinymim.precision": "fp32"})
        artifacts.append(_artifact(out, "onnx-fp32", "model.onnx", "fp32", "onnxruntime", "onnx"))

        calib = (
            serve_inputs(card, evalset.calibration) if ("onnx-int8" in formats or "tensorrt-int8" in formats) else None
        )
        report["quantization"] = {}
        if "onnx-int8" in formats:
            report["quantization"]["onnx-int8"] = quantize_static_qdq(
                portable,
                out / "model.int8.onnx",
                calib,
                flavour="cpu",
                recipe=DEFAULT_RECIPE.replace(
                    keep_float=cfg.int8_float_roles, calibration=cfg.calibration, per_channel=cfg.per_channel
                ),
                work_dir=work,
            )
            report["quantization"]["onnx-int8"]["worst_layers"] = _int8_worst_layers(
                work, out / "model.int8.onnx", calib
            )
            report["quantization"]["onnx-int8-dynamic"] = quantize_dynamic_int8(
                portable, out / "model.int8-dynamic.onnx", per_channel=cfg.per_channel
            )
            for art, file in (("onnx-int8", "model.int8.onnx"), ("onnx-int8-dynamic", "model.int8-dynamic.onnx")):
                set_metadata(
                    out / file,
                    {**meta, "tinymim.precision": "int8", "tinymim.quantization": str(report["quantization"][art])},
                )
                artifacts.append(_artifact(out, art, file, "int8", "onnxruntime", "onnx"))
        if any(f in GPU_FORMATS for f in formats):
            gpu = build_gpu_artifacts(
                formats,
                portable=portable,
                calibration=calib,
                out=out,
                work=work,
                metadata=meta,
                input_shape=input_shape,  # type: ignore[arg-type]
                max_batch=cfg.max_batch,
                calibration_method=cfg.calibration,
                per_channel=cfg.per_channel,
                timing_cache=Path(cfg.timing_cache) if cfg.timing_cache else None,
            )
            artifacts.extend(gpu.artifacts)
            report["quantization"].update(gpu.quantization)
            device_tools.update(gpu.tools)

    bundle = Bundle(
        model_name=name,
        labels=list(card.labels),
        preprocess=card.preprocess,
        input=TensorSpec(INPUT_NAME, "FP32", [-1, *input_shape]),
        output=TensorSpec(OUTPUT_NAME, "FP32", [-1, card.num_classes]),
        max_batch=cfg.max_batch,
        artifacts=artifacts,
        source={
            "path": str(cfg.checkpoint),
            "weights": str(source.weights),
            "sha256": source.sha256,
            "card": card.to_dict(),
        },
        tools=_tools(device_tools),
    )
    bundle.save(out)

    # --- the gate, through serve/'s runtimes and preprocessing -------------------------------------
    images = serve_inputs(card, evalset.images)
    reference = torch_reference(source, evalset.images)
    batches = check_batches(cfg.max_batch)
    for a in artifacts:
        if a.gate:  # a GPU build that failed carries its verdict already (export/gpu_artifacts.py)
            continue
        a.gate = gate_artifact(
            bundle,
            a,
            images,
            evalset.labels,
            reference,
            thresholds=thresholds[a.precision],
            batches=batches,
            device=default_device(a),
        )
    _measure_latency(bundle, cfg, input_shape)
    notes += decide_servable(artifacts, cfg.max_batch)
    bundle.save(out)

    report.update(
        {
            "source": bundle.source | {"card": None},
            "eval": {
                "source": evalset.source,
                "images": int(len(images)),
                "batches": list(batches),
                "reference_accuracy": float((reference.argmax(1) == evalset.labels).mean()),
            },
            "artifacts": [_artifact_summary(a) for a in artifacts],
            "tools": bundle.tools,
            "notes": notes,
        }
    )

    write_report(report, out)
    if cfg.triton_repo:
        report["triton_models"] = write_triton_repo(bundle, cfg.triton_repo)
    failed = failed_requests(artifacts, formats)
    if failed:
        log.error("artifacts failing the gate: %s (bundle written, they are marked not servable)", ", ".join(failed))
    return ExportResult(bundle=out, report=report, exit_code=3 if failed else 0, failed=failed)


def _int8_worst_layers(work: Path, qdq: Path, calib: Any) -> list[dict[str, Any]]:
    """The QDQ debugger's ranking of the static INT8 activations (lowest round-trip SQNR first), on 8 images."""
    pre = preprocessed_path(qdq, work)
    if not pre.is_file():  # the pre-pass was skipped: the graph quantized as is is the float reference
        return []
    try:
        return layer_errors(pre, qdq, calib[:8], top=5)
    except Exception as err:  # noqa: BLE001 - a diagnostic: its failure must not fail the export
        log.warning("QDQ debugger skipped: %s: %s", type(err).__name__, str(err)[:200])
        return []


def _measure_latency(bundle: Bundle, cfg: ExportConfig, input_shape: tuple[int, ...]) -> None:
    runtimes = {}
    for a in bundle.artifacts:
        if a.gate.get("passed"):
            runtimes[a.name] = (
                open_runtime(bundle, a, threads=cfg.threads) if a.runtime == "onnxruntime" else open_runtime(bundle, a)
            )
    try:
        lat = interleaved_latency(
            {n: r.infer for n, r in runtimes.items()},
            input_shape=input_shape,  # type: ignore[arg-type]
            batch_sizes=tuple(sorted({1, cfg.max_batch})),
            repeats=cfg.latency_repeats,
        )
    finally:
        for r in runtimes.values():
            r.close()
    for a in bundle.artifacts:
        a.latency_ms = lat.get(a.name, {})


def _artifact_summary(a: Artifact) -> dict[str, Any]:
    return {
        "name": a.name,
        "file": a.file,
        "format": a.format,
        "precision": a.precision,
        "runtime": a.runtime,
        "sha256": a.sha256,
        "servable": a.servable,
        "reason": a.reason,
        "gate": a.gate,
        "latency_ms": a.latency_ms,
        "device": a.device,
    }

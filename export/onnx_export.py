"""PyTorch model -> one ONNX file with a truly dynamic batch axis, checked and verified.

Exporter choice (torch 2.14, measured here): the default is the TorchScript exporter (``dynamo=False``).
It emits opset 17 directly, one ``LayerNormalization`` node per LayerNorm (which TensorRT keeps in
FP32-safe form), and its ViT-T graph ran as fast as or faster than the dynamo one in ONNX Runtime. The
``dynamo=True`` exporter (torch.export + onnxscript) implements opset >= 18 only; at opset 17 its output
must go through onnx's version converter, which on timm ViTs with ``global_pool='avg'`` left an invalid
``ReduceMean`` attribute (``noop_with_empty_axes``) that we strip. ``exporter="dynamo"`` (natural at
``--opset 18``) stays available for models TorchScript cannot trace.

A silently baked batch is made impossible twice: the graph's input and output must carry a symbolic
first dimension, and the exported model is run at batch 1, an odd batch and ``max_batch`` and compared
with PyTorch (:func:`verify_onnx`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np

from export.errors import ConversionError

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DEFAULT_OPSET = 17
TWO_GB = 2 * 1024**3
Exporter = Literal["dynamo", "torchscript"]


def check_batches(max_batch: int) -> tuple[int, ...]:
    """Batch sizes every artifact is verified at: 1, an odd batch, and ``max_batch`` (deduplicated).

    The odd batch is the largest odd number <= min(7, max_batch - 1), so it differs from both ends
    whenever ``max_batch >= 3``.
    """
    odd = min(7, max_batch - 1)
    if odd % 2 == 0:
        odd -= 1
    return tuple(sorted({1, max(1, odd), max_batch}))


def export_onnx(
    model: Any,
    path: str | Path,
    *,
    input_shape: tuple[int, int, int],
    max_batch: int,
    opset: int = DEFAULT_OPSET,
    exporter: Exporter = "torchscript",
    metadata: dict[str, str] | None = None,
) -> Path:
    """Export ``model`` (eval mode, fp32, CPU) to ``path`` with input ``input`` (B,C,H,W), output ``logits`` (B,K).

    The trace uses batch 2 (never 1: a size-1 dimension is specialised as a constant by the tracer).
    Raises ConversionError when torch cannot export the model or the result fails ``onnx.checker``.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().float().cpu()
    example = torch.randn(2, *input_shape)
    n_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    external = n_bytes > TWO_GB
    try:
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=max(2, max_batch))
            arg = _forward_arg_name(model)
            # The dynamo exporter implements opset >= 18 only; lower opsets are converted afterwards with
            # onnx's version converter (opset 17 keeps LayerNormalization as one op).
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=True,
                opset_version=max(opset, 18),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes={arg: {0: batch}},
                external_data=external,
                verbose=False,
            )
            if opset < 18:
                _convert_opset(path, opset, external)
        elif exporter == "torchscript":
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )
        else:
            raise ConversionError(f"unknown exporter {exporter!r}; use 'dynamo' or 'torchscript'")
    except ConversionError:
        raise
    except Exception as err:  # torch raises many unrelated types from inside the tracer
        other = "torchscript" if exporter == "dynamo" else "dynamo"
        raise ConversionError(
            f"torch.onnx export ({exporter}) failed: {type(err).__name__}: {str(err).splitlines()[0][:400]}. "
            f"Check that the model runs under torch.export, or retry with --exporter {other}."
        ) from err
    check_graph(path, input_shape=input_shape, opset=opset)
    if metadata:
        set_metadata(path, metadata)
    log.info("exported %s (%s exporter, opset %d, %.1f MB)", path.name, exporter, opset, path.stat().st_size / 1e6)
    return path


def _convert_opset(path: Path, opset: int, external: bool) -> None:
    import onnx
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(onnx.load(str(path)), opset)
    except Exception as err:  # onnx raises RuntimeError/ValueError subclasses from C++
        raise ConversionError(f"cannot convert the exported graph to opset {opset}: {err}; try --opset 18") from None
    for node in converted.graph.node:  # opset-18-only attribute the converter leaves behind (default 0)
        if node.op_type.startswith("Reduce"):
            keep = [a for a in node.attribute if not (a.name == "noop_with_empty_axes" and a.i == 0)]
            del node.attribute[:]
            node.attribute.extend(keep)
    onnx.save(converted, str(path), save_as_external_data=external)


def _forward_arg_name(model: Any) -> str:
    import inspect

    params = [
        p
        for p in inspect.signature(model.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if not params:
        raise ConversionError(f"{type(model).__name__}.forward takes no positional input; cannot export it")
    return params[0].name


def check_graph(path: str | Path, *, input_shape: tuple[int, int, int], opset: int | None = None) -> None:
    """``onnx.checker`` full check, opset, names, and a symbolic batch dimension on input and output."""
    import onnx

    path = Path(path)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise ConversionError(f"{path.name} fails onnx.checker: {err}") from None
    model = onnx.load(str(path), load_external_data=False)
    if opset is not None:
        got = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        if got != opset:
            raise ConversionError(f"{path.name} has opset {got}, expected {opset}")
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in model.graph.output] != [OUTPUT_NAME]:
        raise ConversionError(
            f"{path.name}: expected one input {INPUT_NAME!r} and one output {OUTPUT_NAME!r}, got "
            f"{[i.name for i in inputs]} -> {[o.name for o in model.graph.output]}"
        )
    for value, what in ((inputs[0], "input"), (model.graph.output[0], "output")):
        dims = value.type.tensor_type.shape.dim
        if not dims or dims[0].HasField("dim_value"):
            baked = dims[0].dim_value if dims else "missing"
            raise ConversionError(
                f"{path.name}: the {what} batch dimension is fixed ({baked}) instead of dynamic; "
                "the exporter baked the trace batch into the graph"
            )
    in_dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim[1:]]
    if tuple(in_dims) != tuple(input_shape):
        raise ConversionError(f"{path.name}: input shape {in_dims} differs from the model card's {list(input_shape)}")


def set_metadata(path: str | Path, metadata: dict[str, str]) -> None:
    """Write ``metadata_props`` (preprocessing, labels, provenance) into the ONNX file in place."""
    import onnx

    model = onnx.load(str(path))
    existing = {p.key: p for p in model.metadata_props}
    for key, value in metadata.items():
        if key in existing:
            existing[key].value = value
        else:
            model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def read_metadata(path: str | Path) -> dict[str, str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def artifact_metadata(model_name: str, labels: list[str], preprocess: dict[str, Any], **extra: Any) -> dict[str, str]:
    """The metadata_props every tinymim ONNX file carries (values are JSON strings)."""
    meta = {
        "tinymim.model_name": model_name,
        "tinymim.labels": json.dumps(list(labels)),
        "tinymim.preprocess": json.dumps(preprocess),
        "tinymim.input": INPUT_NAME,
        "tinymim.output": OUTPUT_NAME,
    }
    meta.update({f"tinymim.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()})
    return meta


def verify_onnx(
    path: str | Path,
    model: Any,
    *,
    input_shape: tuple[int, int, int],
    max_batch: int,
    atol: float = 1e-3,
    seed: int = 0,
) -> dict[str, float]:
    """Run the ONNX file in ONNX Runtime at each of :func:`check_batches` and compare with PyTorch.

    Returns {"batch_<b>": max |onnx - torch|}; raises ConversionError when a batch size is refused
    (a baked batch) or the logits differ by more than ``atol + 1e-3 * max|torch|``.
    """
    import onnxruntime as ort
    import torch

    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    diffs: dict[str, float] = {}
    for b in check_batches(max_batch):
        x = rng.standard_normal((b, *input_shape), dtype=np.float32)
        try:
            (got,) = sess.run([OUTPUT_NAME], {INPUT_NAME: x})
        except Exception as err:  # onnxruntime raises its own Fail/InvalidArgument types
            raise ConversionError(f"{Path(path).name} fails at batch {b}: {str(err)[:300]}") from None
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).float().numpy()
        if got.shape != ref.shape:
            raise ConversionError(f"{Path(path).name}: batch {b} gives shape {got.shape}, PyTorch {ref.shape}")
        diff = float(np.abs(got - ref).max())
        if diff > atol + 1e-3 * float(np.abs(ref).max()):
            raise ConversionError(f"{Path(path).name}: at batch {b} logits differ from PyTorch by {diff:.3g}")
        diffs[f"batch_{b}"] = diff
    return diffs

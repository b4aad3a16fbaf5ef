"""Where static INT8 loses accuracy: ONNX Runtime's QDQ debugger (``onnxruntime.quantization.qdq_loss_debug``).

Both the float model (the pre-processed graph that was quantized, so tensor names match) and the QDQ model are
run on a few calibration images with every intermediate tensor saved. For each quantized activation:

- ``qdq_sqnr_db``: signal-to-quantization-noise ratio of the tensor against its own Quantize->Dequantize round
  trip (the error this one quantization adds; low = the 8-bit grid fits the tensor badly);
- ``model_sqnr_db``: the INT8 model's dequantized tensor against the float model's same tensor (the error
  accumulated up to that point).

The report lists the lowest ``qdq_sqnr_db`` first: the layers to keep in float first when INT8 misses its gate
(``StaticRecipe.keep_float``).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from export.quantize import ArrayReader


def layer_errors(float_model: Path, qdq_model: Path, images: np.ndarray, *, top: int = 8) -> list[dict[str, Any]]:
    """The ``top`` quantized activations with the lowest round-trip SQNR, as dicts (see the module doc)."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    with tempfile.TemporaryDirectory(prefix="tinymim-qdq-debug-") as tmp:
        aug_float, aug_qdq = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
        modify_model_output_intermediate_tensors(str(float_model), str(aug_float))
        modify_model_output_intermediate_tensors(str(qdq_model), str(aug_qdq))
        float_acts = collect_activations(str(aug_float), ArrayReader(images, batch=4))
        qdq_acts = collect_activations(str(aug_qdq), ArrayReader(images, batch=4))
    errors = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
    rows = [
        {
            "tensor": name,
            "qdq_sqnr_db": _finite(err["qdq_err"]),
            "model_sqnr_db": _finite(err.get("xmodel_err", math.nan)),
        }
        for name, err in errors.items()
    ]
    rows.sort(key=lambda r: r["qdq_sqnr_db"])
    return rows[:top]


def _finite(db: float) -> float:
    """SQNR in dB rounded for the report; an exact round trip (infinite SQNR) is reported as 999."""
    return round(float(db), 2) if math.isfinite(db) else 999.0

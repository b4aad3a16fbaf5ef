"""Errors raised on purpose by export/: each says what was wrong and what to do."""

from __future__ import annotations

from tinymim.errors import TinymimError


class ExportError(TinymimError):
    """Base of every error in export/ (conversion, quantization, engines, the gate)."""


class SourceError(ExportError):
    """The checkpoint or run folder is missing, corrupt, or carries no model card."""


class EvalDataError(ExportError):
    """Evaluation or calibration data is missing, empty, or labelled with other classes than the model."""


class ConversionError(ExportError):
    """torch.onnx export, the ONNX checker, quantization or an engine build failed."""


class ToolMissing(ExportError):
    """A requested format needs hardware or a package this machine lacks (e.g. TensorRT)."""

    exit_code = 2

"""Errors raised on purpose by compress/: each says what was wrong and what to do."""

from __future__ import annotations

from tinymim.errors import TinymimError


class CompressError(TinymimError):
    """Base of every error in compress/ (training, distillation, evaluation)."""


class ModelError(CompressError):
    """An unknown architecture name or an impossible architecture setting."""


class CheckpointError(CompressError):
    """A checkpoint is missing, unreadable, or does not fit the model it is loaded into."""


class DataError(CompressError):
    """A dataset is missing, empty, or holds images that cannot be read (with strict data)."""


class NonFiniteLossError(CompressError):
    """The loss became NaN or Inf; the run stops and the last good checkpoint is kept."""

    exit_code = 3

"""Errors raised by distillation: bad teachers, students, methods or settings (before training starts)."""

from compress.errors import CompressError


class DistillError(CompressError):
    """A teacher/student/method combination that cannot be distilled; the message says what to change."""

    exit_code = 2


class AlignmentError(DistillError):
    """The student's distilled block cannot take the teacher's head count."""


class NormalizationError(DistillError):
    """The teacher's input normalisation is unknown; we ask rather than guess ImageNet values."""

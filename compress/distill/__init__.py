"""TinyMIM distillation: early-stopped q/k/v, head alignment, frozen teacher, two-view transform, runs.

Public pieces (see docs/ARCHITECTURE.md, "Distillation API"):
- ``extract_qkv(model, x, block)``: q, k, v of one block without running anything after it.
- ``align_student_heads``, ``resolve_target_block``, ``freeze_unused``: METHOD.md section 1 choices.
- ``build_distillation(teacher, student, methods, ...) -> Distillation`` (module, teacher, loss_fn, report).
- ``TwoViewTransform`` / ``ViewSpec``: one crop + flip for both networks, jitter for the student.
- ``load_teacher(spec, ...)``: tinymim checkpoint or timm name + weights (normalisation required).
"""

from compress.distill.alignment import (
    FreezeReport,
    align_student_heads,
    default_target_block,
    freeze_unused,
    resolve_target_block,
)
from compress.distill.errors import AlignmentError, DistillError, NormalizationError
from compress.distill.forward import partial_forward
from compress.distill.qkv import block_qkv, extract_qkv, is_transformer
from compress.distill.setup import Distillation, build_distillation
from compress.distill.teacher import FrozenTeacher
from compress.distill.teacher_loading import LoadedTeacher, load_teacher
from compress.distill.transforms import TwoViewTransform, ViewSpec

__all__ = [
    "AlignmentError",
    "DistillError",
    "Distillation",
    "FreezeReport",
    "FrozenTeacher",
    "LoadedTeacher",
    "NormalizationError",
    "TwoViewTransform",
    "ViewSpec",
    "align_student_heads",
    "block_qkv",
    "build_distillation",
    "default_target_block",
    "extract_qkv",
    "freeze_unused",
    "is_transformer",
    "load_teacher",
    "partial_forward",
    "resolve_target_block",
]

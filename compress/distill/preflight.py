"""Checks of a distillation's methods against its teacher and data that need no image decoded.

They run right after the teacher is loaded, before the data is scanned and before any training, so an
impossible combination costs the user seconds: a method that distils class scores with a teacher that has
no classifier head, a method that reads labels on an unlabelled folder, soft labels on unlabelled data from
a teacher whose class names are unknown.
"""

from __future__ import annotations

from typing import Any

from compress.distill.errors import DistillError
from compress.losses import method_class


def check_methods_against_teacher(methods: tuple[tuple[str, float], ...], *, teacher: Any) -> None:
    """Refuse methods that need a classifier head when ``teacher`` (a LoadedTeacher) has none."""
    for name, _ in methods:
        if method_class(name).requires_classifier_teacher and not teacher.is_classifier:
            raise DistillError(
                f"method {name!r} distils the teacher's class scores, but the teacher ({teacher.source}) has no "
                "classifier head: it is a backbone (MAE/DINO-style weights without head.* keys, or a card with task "
                "'backbone'), and tinymim never invents a head. Use --method relation (or feature / cls_token), "
                "which need no head, or a teacher fine-tuned on your classes"
            )


def check_methods_against_data(
    methods: tuple[tuple[str, float], ...],
    *,
    options: dict[str, dict[str, Any]],
    labelled: bool,
    data: str,
    teacher_labels: tuple[str, ...] | None,
) -> None:
    """Refuse, on unlabelled data, methods that read labels and soft labels without known class names."""
    if labelled:
        return
    for name, _ in methods:
        cls = method_class(name)
        if cls.uses_labels(options.get(name, {})):
            alpha = options.get(name, {}).get("alpha")
            raise DistillError(
                f"method {name!r} with alpha {alpha} mixes in the label loss, but {data} is an unlabelled folder "
                "(images with no class folders). Pass --alpha 1 to learn from the teacher's scores alone, use "
                f"--method relation, or give labelled data ({data}/<class>/<image>)"
            )
        if cls.requires_classifier_teacher and not teacher_labels:
            raise DistillError(
                f"method {name!r} on the unlabelled folder {data}: the student's classes would come from the "
                "teacher's card, but this teacher has no class names (a timm name + weights file). Use a tinymim "
                "teacher checkpoint, labelled data, or --method relation"
            )

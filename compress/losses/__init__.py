"""Distillation losses and methods, in a registry (see ``registry.py``).

Built-in methods: ``relation`` (TinyMIM, default), ``feature``, ``cls_token``, ``logits`` (Hinton KD,
``hard=True`` for DeiT) and ``logits_hard``.
"""

from compress.losses import cls_token, feature, logits, relation  # noqa: F401  (registers the methods)
from compress.losses.registry import (
    METHODS,
    DistillMethod,
    create_method,
    deepest_output,
    method_class,
    parse_methods,
    register_method,
)

__all__ = [
    "METHODS",
    "DistillMethod",
    "create_method",
    "deepest_output",
    "method_class",
    "parse_methods",
    "register_method",
]

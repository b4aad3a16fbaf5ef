"""The registry of distillation methods: a dict filled by a decorator, looked up by name.

A method is an ``nn.Module`` subclass of ``DistillMethod``. It declares which outputs it needs from the
teacher and from the student ("qkv", "tokens", "logits") and maps them to a scalar loss. Methods may own
parameters (projectors); they live inside the trained module so DDP and the optimiser see them.

Combinations are written ``"relation:1.0,logits:0.5"``: total loss = sum of weight x method loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from tinymim.errors import ConfigError

OUTPUTS = ("qkv", "tokens", "logits")  # in increasing order of how much of a network must run


class DistillMethod(nn.Module):
    """Base class: ``forward(student_out, teacher_out, labels) -> scalar loss``.

    ``student_out`` / ``teacher_out`` are dicts with the keys listed in ``needs``:
    "qkv" -> (q, k, v) each (B, M, N, d); "tokens" -> (B, N, D) output of the distilled block;
    "logits" -> (B, K).
    """

    name: str = ""
    needs: tuple[str, ...] = ()
    requires_transformer_teacher: bool = True
    requires_classifier_teacher: bool = False

    @classmethod
    def uses_labels(cls, options: dict[str, Any]) -> bool:
        """Whether the method, built with ``options``, reads the data's labels (unlabelled data is refused)."""
        return False

    def __init__(self, *, student_dim: int, teacher_dim: int, **_: Any) -> None:
        super().__init__()
        self.student_dim = student_dim
        self.teacher_dim = teacher_dim

    def forward(
        self, student_out: dict[str, Any], teacher_out: dict[str, Any], labels: torch.Tensor | None
    ) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


METHODS: dict[str, type[DistillMethod]] = {}
M = TypeVar("M", bound=type[DistillMethod])


def register_method(name: str) -> Callable[[M], M]:
    """Class decorator adding a method to ``METHODS`` under ``name``."""

    def wrap(cls: M) -> M:
        if name in METHODS:
            raise ValueError(f"distillation method {name!r} registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls

    return wrap


def method_class(name: str) -> type[DistillMethod]:
    """The registered class for ``name``; a failed lookup names the valid choices.

    The built-in methods are registered by the time this runs: importing this module runs the package's
    ``__init__`` first, which imports every method module.
    """
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(
            f"unknown distillation method {name!r}; valid choices: {', '.join(sorted(METHODS))}"
        ) from None


def create_method(name: str, *, student_dim: int, teacher_dim: int, **kwargs: Any) -> DistillMethod:
    """Build the method ``name`` for the given widths (kwargs: method options such as temperature)."""
    return method_class(name)(student_dim=student_dim, teacher_dim=teacher_dim, **kwargs)


def parse_methods(spec: str) -> tuple[tuple[str, float], ...]:
    """``"relation"`` -> (("relation", 1.0),); ``"relation:1.0,logits:0.5"`` -> two weighted methods."""
    items: list[tuple[str, float]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, weight = part.partition(":")
        name = name.strip()
        method_class(name)
        try:
            w = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ConfigError(
                f"method weight in {part!r} is not a number; write e.g. relation:1.0,logits:0.5"
            ) from None
        if w <= 0:
            raise ConfigError(f"method weight in {part!r} must be positive")
        if any(n == name for n, _ in items):
            raise ConfigError(f"method {name!r} is listed twice in {spec!r}")
        items.append((name, w))
    if not items:
        raise ConfigError(f"no distillation method given in {spec!r}; valid choices: {', '.join(sorted(METHODS))}")
    return tuple(items)


def deepest_output(needs: set[str]) -> str | None:
    """The output that forces the most computation among ``needs`` (None for an empty set)."""
    for out in reversed(OUTPUTS):
        if out in needs:
            return out
    return None

"""A script of benchmarks/ loaded as a module, so tests can call its functions without running it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def benchmark_script(name: str) -> Path:
    """benchmarks/NAME.py of this checkout."""
    return REPO / "benchmarks" / f"{name}.py"


def load_benchmark(name: str) -> ModuleType:
    """Import benchmarks/NAME.py afresh (module name ``benchmark_NAME``)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", benchmark_script(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

"""Latency client (``tinymim bench``): load a running service, or time a bundle's runtime offline."""

from serve.bench.config import BenchConfig
from serve.bench.run import run_bench

__all__ = ["BenchConfig", "run_bench"]

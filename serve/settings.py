"""Service settings: one pydantic-settings model, from CLI flags, ``TINYMIM_*`` environment variables or code.

Precedence: explicit values (CLI flags / keyword arguments) > environment variables > defaults. Every value is
checked when the settings are built, before any model is loaded: a bad port, a missing bundle or a negative
queue size stops start-up with a :class:`tinymim.errors.ConfigError` naming the setting.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tinymim.configio import build_config

MiB = 1 << 20


class ServeSettings(BaseSettings):
    """Everything ``tinymim serve`` can be told. Environment: ``TINYMIM_<FIELD>`` (e.g. ``TINYMIM_PORT=9000``)."""

    model_config = SettingsConfigDict(env_prefix="TINYMIM_", frozen=True, extra="forbid")

    bundle: Path = Field(description="bundle folder written by 'tinymim export' (holds bundle.json)")
    artifact: str = Field(
        "auto", description="artifact name to serve, or 'auto' = fastest gate-passing one that runs here"
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="device for ONNX Runtime artifacts")
    host: str = Field("127.0.0.1", description="interface to bind; 0.0.0.0 inside a container")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0 = any free port)")
    max_batch_size: int = Field(32, ge=1, le=4096, description="largest batch the worker runs (capped by the bundle)")
    max_queue_delay_ms: float = Field(5.0, ge=0, le=10_000, description="longest wait to fill a batch")
    inline_max_compute_ms: float = Field(
        2.0,
        ge=0,
        description="a request that finds the service idle runs at once on the event loop, without the two "
        "thread hand-offs, when the model's batch-1 compute (measured at warm-up) is at most this (0: never)",
    )
    batch_policy: Literal["arrivals", "always"] = Field(
        "arrivals",
        description="'arrivals': wait (up to the delay) only while more requests are already arriving, so a lone "
        "request is never delayed; 'always': wait the full delay for a fuller batch, like Triton",
    )
    max_queue: int = Field(256, ge=1, description="queued samples before new requests get 503")
    request_timeout_s: float = Field(30.0, gt=0, description="default per-request timeout (v2 'timeout' overrides)")
    max_body_bytes: int = Field(16 * MiB, ge=1024, description="largest request body accepted (413 above)")
    max_pixels: int = Field(40_000_000, ge=1, description="largest decoded image (decompression-bomb guard)")
    preprocess_workers: int = Field(0, ge=0, description="threads decoding/preprocessing images (0 = CPU count)")
    preprocess_inline_pixels: int = Field(
        16384,
        ge=0,
        description="images of at most this many pixels (default 128x128) are decoded on the event loop, where "
        "that is cheaper than a hand-off to a preprocessing thread; larger ones go to the thread pool",
    )
    threads: int | None = Field(
        None, ge=1, description="ONNX Runtime intra-op threads per worker (default: usable cores / workers)"
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="server processes sharing the port, each with its own runtime session, batcher and threads "
        "(see docs/SERVING.md for when more than one pays)",
    )
    cpus: int | None = Field(
        None, ge=1, description="pin the server to its first N usable CPUs (emulates a small device; default all)"
    )
    api_key: SecretStr | None = Field(
        None, description="if set, clients must send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
    )
    model_name: str | None = Field(None, description="name on the v2 routes (default: the bundle's model_name)")
    graceful_timeout_s: float = Field(30.0, gt=0, description="longest wait for in-flight requests on SIGTERM")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("bundle")
    @classmethod
    def _bundle_exists(cls, v: Path) -> Path:
        manifest = v / "bundle.json" if v.is_dir() else v
        if not manifest.is_file():
            raise ValueError(f"no bundle at {v}: expected a folder holding bundle.json (made by 'tinymim export')")
        return manifest.parent

    @field_validator("cpus")
    @classmethod
    def _cpus_usable(cls, v: int | None) -> int | None:
        usable = len(os.sched_getaffinity(0))
        if v is not None and v > usable:
            raise ValueError(f"only {usable} CPUs are usable here; pin to at most {usable}")
        return v

    @field_validator("api_key")
    @classmethod
    def _key_not_empty(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value():
            raise ValueError("api_key is empty; unset it to disable authentication")
        return v


def load_settings(**values: Any) -> ServeSettings:
    """Build and validate settings; ``values`` whose value is None are left to the environment/defaults.

    Raises ConfigError with one line per invalid setting (pydantic's messages, naming the env variable);
    the loader is the one every command uses (:func:`tinymim.configio.build_config`).
    """
    return build_config(ServeSettings, values)

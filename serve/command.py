"""``tinymim serve BUNDLE``: run the HTTP service with uvicorn.

Only argparse and pydantic-settings load for ``--help``; FastAPI, uvicorn and ONNX Runtime load in ``run``.
Flags override ``TINYMIM_*`` environment variables, which override the defaults (see serve/settings.py).
SIGTERM/SIGINT: uvicorn stops accepting connections and finishes in-flight requests (up to
``graceful_timeout_s``), then the lifespan drains the batcher and the process exits 0.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="bundle folder made by 'tinymim export' (env TINYMIM_BUNDLE)", nargs="?")
    p = parser.add_argument
    p("--artifact", help="artifact to serve, or 'auto' (default): fastest gate-passing artifact that runs here")
    p("--device", choices=["auto", "cpu", "cuda"], help="device for ONNX Runtime artifacts (default auto)")
    p("--host", help="interface to bind (default 127.0.0.1; use 0.0.0.0 in a container)")
    p("--port", type=int, help="TCP port (default 8000)")
    p("--max-batch-size", type=int, help="largest dynamic batch (default 32, capped by the bundle)")
    p("--max-queue-delay-ms", type=float, help="longest wait to fill a batch (default 5)")
    p(
        "--batch-policy",
        choices=["arrivals", "always"],
        help="wait for a fuller batch only while requests are arriving (default), or always up to the delay",
    )
    p("--max-queue", type=int, help="queued samples before 503 (default 256)")
    p("--request-timeout-s", type=float, help="default per-request timeout (default 30)")
    p("--max-body-bytes", type=int, help="largest request body (default 16 MiB)")
    p("--threads", type=int, help="ONNX Runtime intra-op threads (default: all cores)")
    p("--preprocess-workers", type=int, help="image preprocessing threads (default: CPU count)")
    p("--api-key", help="require this key (Authorization: Bearer KEY); prefer env TINYMIM_API_KEY")
    p("--model-name", help="model name on the v2 routes (default: the bundle's)")
    p("--access-log", action="store_true", help="log every request (uvicorn access log)")


def settings_from_args(args: argparse.Namespace):
    from serve.settings import load_settings

    keys = (
        "bundle",
        "artifact",
        "device",
        "host",
        "port",
        "max_batch_size",
        "max_queue_delay_ms",
        "batch_policy",
        "max_queue",
        "request_timeout_s",
        "max_body_bytes",
        "threads",
        "preprocess_workers",
        "api_key",
        "model_name",
    )
    return load_settings(**{k: getattr(args, k, None) for k in keys})


def _server_class():
    import contextlib

    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM after its graceful shutdown, so the process would die "killed by signal"
        (exit -15/143). Our shutdown is complete and clean at that point, so we exit 0 instead."""

        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                try:
                    yield
                finally:
                    if self.started and hasattr(self, "_captured_signals"):
                        self._captured_signals.clear()

    return GracefulServer


def run_server(settings, *, access_log: bool = False) -> None:
    """Serve ``settings.bundle`` in this process until SIGTERM/SIGINT (blocking)."""
    import uvicorn

    from serve.app import create_app
    from serve.bundle import load_bundle

    load_bundle(settings.bundle, verify=True)  # fail fast with a clear message before uvicorn starts
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=access_log,
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
        lifespan="on",
    )
    server = _server_class()(config)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits this way when the lifespan (model load) fails
        if server.started:
            raise
        err = app.state.service.start_error
        from serve.errors import ServeError

        raise ServeError(f"the server did not start: {err or 'see the log above'}") from exc
    if not server.started:
        from serve.errors import ServeError

        raise ServeError("the server did not start (see the log above)")


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    logging.getLogger("serve").setLevel(settings.log_level.upper())
    run_server(settings, access_log=args.access_log)
    return 0

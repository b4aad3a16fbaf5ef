"""``tinymim serve BUNDLE``: run the HTTP service with uvicorn.

Only argparse and pydantic-settings load for ``--help``; FastAPI, uvicorn and ONNX Runtime load in ``run``.
Flags override ``TINYMIM_*`` environment variables, which override the defaults (see serve/settings.py).
SIGTERM/SIGINT: uvicorn stops accepting connections and finishes in-flight requests (up to
``graceful_timeout_s``), then the lifespan drains the batcher and the process exits 0.

``--workers N`` (N > 1) runs uvicorn's process supervisor: N processes share the listening socket, each loads
the bundle into its own runtime session with its own batcher and threads; the supervisor forwards SIGTERM to
each (each drains as above) and exits 0. Settings reach the workers through ``TINYMIM_*`` environment
variables, the same way a user sets them. ``--cpus N`` pins the server (all its processes and threads) to the
first N usable CPUs before anything starts.
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
    p("--threads", type=int, help="ONNX Runtime intra-op threads per worker (default: usable cores / workers)")
    p("--workers", type=int, help="server processes sharing the port, each with its own runtime (default 1)")
    p("--cpus", type=int, help="pin the server to its first N usable CPUs, as on a small device (default: all)")
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
        "workers",
        "cpus",
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


def export_settings(settings) -> dict[str, str]:
    """The ``TINYMIM_*`` environment variables that rebuild ``settings`` in another process."""
    from pydantic import SecretStr

    env = {}
    for name in sorted(settings.model_fields_set):
        value = getattr(settings, name)
        if value is None:
            continue
        env[f"TINYMIM_{name.upper()}"] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    return env


def run_server(settings, *, access_log: bool = False) -> None:
    """Serve ``settings.bundle`` until SIGTERM/SIGINT (blocking): in this process, or in ``workers`` processes."""
    import uvicorn

    from serve.app import create_app
    from serve.bundle import load_bundle
    from serve.errors import ServeError

    if settings.cpus:
        from serve.procinfo import pin_to_cpus

        try:
            log.info("pinned to CPUs %s", pin_to_cpus(settings.cpus))
        except ValueError as err:
            raise ServeError(f"--cpus: {err}") from None
    load_bundle(settings.bundle, verify=True)  # fail fast with a clear message before uvicorn starts
    from serve.http import HttpProtocol

    common = dict(
        host=settings.host,
        port=settings.port,
        http=HttpProtocol,  # uvicorn's httptools protocol, one write per response (serve/http.py)
        ws="none",
        log_config=None,
        access_log=access_log,
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
        lifespan="on",
    )
    if settings.workers > 1:
        _run_workers(
            settings, uvicorn.Config("serve.app:app_from_environment", factory=True, workers=settings.workers, **common)
        )
        return
    app = create_app(settings)
    config = uvicorn.Config(app, **common)
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


def _run_workers(settings, config) -> None:
    """uvicorn's supervisor over ``settings.workers`` processes; each rebuilds the settings from the environment."""
    import os
    import shutil
    import tempfile

    from uvicorn.supervisors import Multiprocess

    os.environ.update(export_settings(settings))
    own_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    if own_dir:  # every worker records its metrics here; /metrics reports them all (serve/metrics.py)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tinymim-metrics-")
    log.info("starting %d worker processes, each with its own runtime session", settings.workers)
    sock = config.bind_socket()
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
        if own_dir:
            shutil.rmtree(os.environ.pop("PROMETHEUS_MULTIPROC_DIR"), ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    logging.getLogger("serve").setLevel(settings.log_level.upper())
    run_server(settings, access_log=args.access_log)
    return 0

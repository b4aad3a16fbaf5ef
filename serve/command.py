"""``tinymim serve BUNDLE``: run the HTTP service with uvicorn.

Only argparse and pydantic-settings load for ``--help``; FastAPI, uvicorn and ONNX Runtime load in ``run``.
The flags are ``ServeSettings``' fields (serve/settings.py) through the loader every command uses
(``tinymim.configio``): flags override a ``--config`` YAML file, which overrides ``TINYMIM_*`` environment
variables, which override the defaults.
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

from serve.bundle import load_bundle
from serve.errors import ServeError
from serve.procinfo import pin_to_cpus
from serve.settings import ServeSettings
from tinymim.configio import add_config_arguments, config_from_args

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # one flag per ServeSettings field (help from its description), plus --config YAML: the one config loader
    add_config_arguments(parser, ServeSettings, positional=("bundle",))
    parser.add_argument("--access-log", action="store_true", help="log every request (uvicorn access log)")


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    """Flags > the --config file > TINYMIM_* environment variables > defaults."""
    return config_from_args(ServeSettings, args)


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

    if settings.cpus:
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

        raise ServeError(f"the server did not start: {err or 'see the log above'}") from exc
    if not server.started:
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

"""Serving with gunicorn: migrations once in the master, an engine in every worker.

Metrics are summed over the workers through a multiprocess directory (bridge/metrics.py).
On SIGTERM, gunicorn stops accepting and lets requests in flight finish within
server.graceful_timeout; each worker's engine winds down at the same time, within most of
that bound: steps in flight finish, no new one starts, and its leases are released, so that
another replica takes its incidents at once rather than when the leases expire.
"""

from __future__ import annotations

import gc
import signal
import sys
import threading

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from bridge import logformat, metrics
from bridge.app import build, build_store, configure_logging
from bridge.config import Config
from bridge.worker import BufferingThreadWorker

# of graceful_timeout, what the engine's steps in flight may use: the master kills a worker
# at graceful_timeout, and the worker needs a moment after them to release its leases
ENGINE_SHARE = 0.8


class OneLineLogger(glogging.Logger):
    """gunicorn's error and access logs, in the bridge's format: both can carry request text."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        logformat.apply([*self.error_log.handlers, *self.access_log.handlers])


def _engine_stop(worker) -> threading.Thread | None:
    """Start stopping the worker's engine (once), beside the HTTP drain, within the bound."""
    if getattr(worker, "bridge_engine_stop", None) is None:
        app = getattr(worker, "wsgi", None)
        engine = app.extensions["bridge"]["engine"] if app is not None else None
        if engine is None:
            return None
        worker.bridge_engine_stop = threading.Thread(
            target=engine.stop, args=(worker.cfg.graceful_timeout * ENGINE_SHARE,), name="engine-stop")
        worker.bridge_engine_stop.start()
    return worker.bridge_engine_stop


def _worker_started(worker) -> None:
    """Wraps gunicorn's SIGTERM handler: the engine starts winding down when HTTP does."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        _engine_stop(worker)
        previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)


def _worker_exit(_server, worker) -> None:
    """In the worker, once its HTTP loop ended: wait for its engine to stop (leases released)."""
    stopping = _engine_stop(worker)
    if stopping is not None:
        stopping.join(worker.cfg.graceful_timeout * ENGINE_SHARE)


def _child_exit(_server, worker) -> None:
    metrics.worker_gone(worker.pid)


class BridgeServer(BaseApplication):
    def __init__(self, config: Config, bind: str | None = None, workers: int | None = None):
        self.bridge_config = config
        self.bind = bind or config["server"]["bind"]
        self.workers = workers or config["server"]["workers"]
        super().__init__()

    def settings(self) -> dict:
        server = self.bridge_config["server"]
        settings = {
            "bind": self.bind,
            "workers": self.workers,
            # slow clients (their TLS handshake too) wait in the poller, not in a thread
            "worker_class": BufferingThreadWorker,
            "threads": server["threads"],
            "worker_connections": server["worker_connections"],
            "keepalive": server["keepalive"],
            "limit_request_line": server["limit_request_line"],
            "limit_request_fields": server["limit_request_fields"],
            "limit_request_field_size": server["limit_request_field_size"],
            "timeout": server["timeout"],
            "graceful_timeout": server["graceful_timeout"],
            "control_socket_disable": True,  # gunicorn >= 24 opens one in $HOME otherwise
            "accesslog": "-" if self.bridge_config["logging"]["access"] else None,
            "logger_class": OneLineLogger,
            "on_starting": lambda _arbiter: build_store(self.bridge_config, migrate=True),
            "post_worker_init": _worker_started,
            "worker_exit": _worker_exit,
            "child_exit": _child_exit,
        }
        tls = server.get("tls")
        if tls:
            settings.update(certfile=tls["certfile"], keyfile=tls["keyfile"])
            if tls.get("ca_certs"):
                settings.update(ca_certs=tls["ca_certs"], cert_reqs=2)  # ssl.CERT_REQUIRED
        return settings

    def load_config(self) -> None:
        for key, value in self.settings().items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self):
        # runs in each worker after the fork: its own DB pool, Nova sessions, engine threads
        app = build(self.bridge_config)
        # what is loaded now lives as long as the worker: out of the collector's sight, a full
        # collection no longer walks it (tens of ms, which would land inside an engine step)
        gc.freeze()
        # a woken engine thread waits for the GIL until the request thread that woke it blocks,
        # or for this long: 5 ms by default, a confirmation's whole budget
        sys.setswitchinterval(0.001)
        return app


def serve(config: Config, bind: str | None = None, workers: int | None = None) -> None:
    configure_logging(config)
    with metrics.multiprocess_dir():
        BridgeServer(config, bind, workers).run()

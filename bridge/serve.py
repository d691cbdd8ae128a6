"""Serving with gunicorn: migrations once in the master, an engine in every worker."""

from __future__ import annotations

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from bridge.app import build, build_store, configure_logging
from bridge.config import Config
from bridge.logescape import install
from bridge.worker import BufferingThreadWorker


class OneLineLogger(glogging.Logger):
    """gunicorn's error and access logs, escaped like the bridge's: both can carry request text."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        install([*self.error_log.handlers, *self.access_log.handlers])


class BridgeServer(BaseApplication):
    def __init__(self, config: Config, bind: str | None = None, workers: int | None = None):
        self.bridge_config = config
        self.bind = bind or config["server"]["bind"]
        self.workers = workers or config["server"]["workers"]
        super().__init__()

    def load_config(self) -> None:
        server = self.bridge_config["server"]
        settings = {
            "bind": self.bind,
            "workers": self.workers,
            "worker_class": BufferingThreadWorker,  # slow clients wait in the poller, not in a thread
            "threads": server["threads"],
            "worker_connections": server["worker_connections"],
            "keepalive": server["keepalive"],
            "limit_request_line": server["limit_request_line"],
            "limit_request_fields": server["limit_request_fields"],
            "limit_request_field_size": server["limit_request_field_size"],
            "timeout": 60,
            "graceful_timeout": 10,
            "control_socket_disable": True,  # gunicorn >= 24 opens one in $HOME otherwise
            "accesslog": "-",
            "logger_class": OneLineLogger,
            "on_starting": lambda _arbiter: build_store(self.bridge_config, migrate=True),
        }
        for key, value in settings.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self):
        # runs in each worker after the fork: its own DB pool, Nova sessions, engine threads
        return build(self.bridge_config)


def serve(config: Config, bind: str | None = None, workers: int | None = None) -> None:
    configure_logging(config)
    BridgeServer(config, bind, workers).run()

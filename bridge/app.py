"""Wiring: build the store, Nova client, engine and Flask app from a Config."""

from __future__ import annotations

from bridge import logformat
from bridge.api import create_app
from bridge.config import Config
from bridge.engine import Engine, utcnow
from bridge.inventory import Inventory, domain_aggregates
from bridge.nova import Nova
from bridge.store import Store, create_engine, upgrade


def configure_logging(config: Config) -> None:
    logformat.configure(config["logging"]["level"], config["logging"]["format"])


def build_store(config: Config, migrate: bool = False) -> Store:
    engine = create_engine(config["database"]["url"])
    if migrate:
        upgrade(engine)
    return Store(engine)


def build_nova(config: Config) -> Nova | None:
    cloud = config.cloud
    if cloud is None:
        return None
    nova = config["nova"]
    return Nova(cloud, timeout=nova["timeout"], attempts=nova["attempts"], backoff_max=nova["backoff_max"],
                # every server request thread keeps its connection
                pool_size=max(10, config["servers"]["concurrency"]))


def build(config: Config, *, with_engine: bool = True):
    """The Flask app, with its engine started when the config enables it."""
    store = build_store(config)
    nova = build_nova(config)
    inventory = Inventory(store, nova, ttl=config["nova"]["inventory_ttl"], clock=utcnow,
                          aggregates=domain_aggregates(config))
    engine = None
    if with_engine and config["engine"]["enabled"]:
        engine = Engine(config, store, nova, inventory=inventory)
        engine.start()
    return create_app(config, store, engine, inventory=inventory)

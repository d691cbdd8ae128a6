"""Persistence: signal log, incidents with leases, timeline, evidence, host inventory."""

from bridge.store.database import create_engine, pending_migrations, upgrade
from bridge.store.queries import Store

__all__ = ["Store", "create_engine", "pending_migrations", "upgrade"]

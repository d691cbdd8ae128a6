"""Database engine and schema migrations (Alembic)."""

from __future__ import annotations

from importlib import resources

import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic import command


def create_engine(url: str) -> sa.Engine:
    if not url.startswith("sqlite"):
        parsed = sa.make_url(url)
        if parsed.drivername == "postgresql":  # SQLAlchemy's default would be psycopg2; we ship psycopg 3
            parsed = parsed.set(drivername="postgresql+psycopg")
        # READ COMMITTED whatever the server's default: the conditional updates that claim
        # signals and leases, and the locks below, are written for it
        return sa.create_engine(parsed, pool_pre_ping=True, isolation_level="READ COMMITTED")
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Transactions are driven by the "begin" hook below, not by pysqlite.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=FULL")
        dbapi_connection.execute("PRAGMA foreign_keys=ON")
        dbapi_connection.execute("PRAGMA busy_timeout=30000")

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection):
        # IMMEDIATE takes the write lock up front: a deferred transaction that read
        # first would fail at once with "database is locked" when it tries to write.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def lock(connection, key: str) -> None:
    """Hold the lock named `key` until the transaction ends. PostgreSQL runs writers side by
    side, so a check-then-insert needs it; SQLite runs them one at a time (BEGIN IMMEDIATE)."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0))))


def _alembic_config(connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("bridge.store").joinpath("migrations")))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        lock(connection, "migrations")  # replicas starting together: one migrates, the others find it done
        command.upgrade(_alembic_config(connection), "head")
    # the gunicorn master migrates, then forks its workers: they must not inherit its connection
    engine.dispose()


def pending_migrations(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
        head = ScriptDirectory.from_config(_alembic_config(connection)).get_heads()
    return set(current) != set(head)

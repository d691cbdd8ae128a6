"""Database engine and schema migrations (Alembic)."""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
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
        # A reader (see readers()) never writes: it takes no lock and waits for nobody.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


READ_ONLY = "bridge_read_only"


def readers(engine: sa.Engine) -> sa.Engine:
    """The same engine and pool, for transactions that only read."""
    return engine.execution_options(**{READ_ONLY: True})


class WriteLock:
    """Writers to one SQLite file, in every process, take turns on a blocking file lock beside it.

    SQLite's own busy handler sleeps and retries: the database sits idle while the waiters
    sleep. A waiter on flock() is woken the moment the lock is released. PostgreSQL runs
    writers side by side: there this lock does nothing.
    """

    def __init__(self, engine: sa.Engine, name: str = "writer"):
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self.path = f"{database}-{name}.lock" if database and database != ":memory:" else None
        self._threads = threading.Lock() if engine.dialect.name == "sqlite" else None
        self._fd: int | None = None
        self._pid: int | None = None

    def __enter__(self):
        if self._threads is None:
            return self
        self._threads.acquire()  # one thread per process queues on the file
        if self.path is not None:
            if self._pid != os.getpid():  # a forked worker: its own open file, not the parent's
                self._fd, self._pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
        return self

    def __exit__(self, *exc):
        if self._threads is None:
            return
        if self.path is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()


class IntakeTurn:
    """One engine at a time, in every process, takes signals in: the next one reads what is left
    after the last one's commit, instead of the same rows (its claim would take nothing). SQLite:
    a file lock beside the database; PostgreSQL: a session advisory lock, held on a connection
    of its own for the round (released by the server if the process dies)."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self._file = WriteLock(engine, "intake") if engine.dialect.name == "sqlite" else None
        self._threads = threading.Lock()
        self._held: sa.Connection | None = None

    def __enter__(self):
        if self._file is not None:
            return self._file.__enter__()
        self._threads.acquire()
        try:
            self._held = self.engine.connect()
            self._held.execute(_ADVISORY_LOCK)
            self._held.commit()  # the lock is the session's: it outlives this transaction
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc):
        if self._file is not None:
            return self._file.__exit__(*exc)
        self._release()

    def _release(self) -> None:
        try:
            if self._held is not None:
                self._held.execute(_ADVISORY_UNLOCK)
                self._held.commit()
        finally:
            if self._held is not None:
                self._held.close()
            self._held = None
            self._threads.release()


_INTAKE_KEY = sa.func.hashtextextended("intake turn", 0)  # apart from lock()'s names
_ADVISORY_LOCK = sa.select(sa.func.pg_advisory_lock(_INTAKE_KEY))
_ADVISORY_UNLOCK = sa.select(sa.func.pg_advisory_unlock(_INTAKE_KEY))


@contextmanager
def writing(engine: sa.Engine, write_lock: WriteLock):
    """A write transaction, begun once it is this writer's turn; committed on leaving."""
    with write_lock, engine.begin() as connection:
        yield connection


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

"""A private PostgreSQL cluster for tests, from Debian's server binaries.

initdb in a directory of our own, the server in the foreground (as the postgres OS user when
we are root: it refuses to run as root), on 127.0.0.1 and a unix socket in that directory
only, stopped by its PID. Nothing system-wide is started or changed. A cluster that cannot
start fails the tests that need it: nothing here skips.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.harness.procs import Process, free_port, run, wait_until

_BINS = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
PG_BIN = Path(_BINS[-1]) if _BINS else None


class PostgresCluster:
    """Run as root, the server runs as the postgres user: root must be reachable by them and
    becomes theirs. start() and stop() fit tests.monitoring.harness.Stack."""

    def __init__(self, root: Path, socket_dir: Path | None = None, port: int | None = None):
        self.root, self.socket_dir = root, socket_dir or root
        self.port = port or free_port()
        self.server: Process | None = None
        self._admin = None  # a psycopg connection, made on first use

    def start(self, timeout: float = 60) -> "PostgresCluster":
        assert PG_BIN is not None, "PostgreSQL server binaries not found under /usr/lib/postgresql"
        self.root.mkdir(exist_ok=True)
        user = "postgres" if os.geteuid() == 0 else None
        if user:
            shutil.chown(self.root, user, user)
        run(PG_BIN / "initdb", "-D", self.root / "data", "-A", "trust", "-U", "postgres", "--no-sync",
            user=user, group=user)
        # durability off: a throw-away cluster; max_connections: many engines, each with its pool
        self.server = Process(
            "postgres", [PG_BIN / "postgres", "-D", self.root / "data", "-p", self.port, "-k", self.socket_dir,
                         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                         "-c", "full_page_writes=off", "-c", "max_connections=300"],
            self.root.parent / "postgres.log",  # root becomes postgres's; the log stays ours
            user=user).start()

        def ready():
            self.check()
            return subprocess.run([PG_BIN / "pg_isready", "-h", self.socket_dir, "-p", str(self.port)],
                                  capture_output=True, timeout=30).returncode == 0

        wait_until("PostgreSQL", ready, timeout, interval=0.1)
        return self

    @property
    def psql(self) -> list:
        return [PG_BIN / "psql", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.socket_dir, "-p", self.port]

    def check(self) -> None:
        self.server.check()

    def log(self) -> str:
        return self.server.log() if self.server else ""

    def execute(self, *statements: str) -> None:
        """As the superuser, each in its own transaction (CREATE DATABASE wants that)."""
        if self._admin is None:  # one connection kept: psql per statement costs more than the statement
            import psycopg  # here: without the driver only the PostgreSQL tests fail, not every test

            self._admin = psycopg.connect(host=str(self.socket_dir), port=self.port, user="postgres",
                                          dbname="postgres", autocommit=True)
        for statement in statements:
            self._admin.execute(statement)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self, timeout: float = 30) -> None:
        """SIGINT is PostgreSQL's fast shutdown (what pg_ctl stop does); SIGKILL if it lingers."""
        if self._admin is not None:
            self._admin.close()
        if self.server is not None:
            self.server.stop(signal.SIGINT, timeout)


def _scratch() -> str | None:
    """tmpfs if it has room: every test copies a fresh database (about 8 MB), which takes
    ~20 ms in memory and ten times that on a virtual machine's disk."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and shutil.disk_usage(shm).free > 1 << 30 else None


@pytest.fixture(scope="session")
def postgres_cluster():
    """One cluster for the whole session, removed at its end."""
    top = Path(tempfile.mkdtemp(prefix="hostdown-bridge-pg-", dir=_scratch()))
    top.chmod(0o755)  # the postgres user must reach its directory below
    cluster = PostgresCluster(top / "pg")
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        shutil.rmtree(top, ignore_errors=True)


_names = itertools.count(1)


@pytest.fixture
def postgres_url(postgres_cluster):
    """A fresh, empty database for one test; dropped after it, whoever is still connected."""
    name = f"bridge_test_{next(_names)}"
    postgres_cluster.execute(f"CREATE DATABASE {name}")
    yield postgres_cluster.url(name)
    postgres_cluster.execute(f"DROP DATABASE {name} WITH (FORCE)")

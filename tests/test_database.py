"""PostgreSQL itself: the engine URL, and migrations when several replicas start at once."""

import subprocess
import sys

import pytest
import sqlalchemy as sa

from bridge.store import create_engine, pending_migrations

pytestmark = pytest.mark.postgres

MIGRATE = "import sys; from bridge.store import create_engine, upgrade; upgrade(create_engine(sys.argv[1]))"


def test_replicas_starting_together_on_an_empty_database_migrate_it_once(postgres_url):
    # processes, as replicas are: Alembic's context is global, threads would share it
    replicas = [subprocess.Popen([sys.executable, "-c", MIGRATE, postgres_url], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    for replica in replicas:
        out, _ = replica.communicate(timeout=120)
        assert replica.returncode == 0, out
    engine = create_engine(postgres_url)
    assert not pending_migrations(engine)
    engine.dispose()


def test_a_plain_postgresql_url_uses_psycopg_3_in_read_committed(postgres_url):
    engine = create_engine(postgres_url.replace("postgresql+psycopg://", "postgresql://"))
    assert engine.dialect.driver == "psycopg"
    with engine.connect() as conn:
        assert conn.execute(sa.text("show transaction_isolation")).scalar() == "read committed"
    engine.dispose()

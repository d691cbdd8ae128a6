"""The schema is defined once (bridge/store/tables.py): the migrations must build exactly it."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bridge.store import create_engine, upgrade
from bridge.store.tables import metadata


def test_migrations_build_exactly_the_tables_module(database_url):
    engine = create_engine(database_url)
    upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
        # alembic does not compare partial-index predicates: the one rule the database keeps itself
        index = {i["name"]: i for i in sa.inspect(conn).get_indexes("incidents")}["one_open_incident_per_host"]
        where = {str(v).replace('"', "").lower() for v in index["dialect_options"].values()}
        assert index["unique"] and where & {"closed_at is null", "(closed_at is null)"}, index
    engine.dispose()


def test_an_incident_returning_during_the_upgrade_keeps_its_wait(database_url):
    from alembic import command

    from bridge.store.database import _alembic_config

    engine = create_engine(database_url)
    wait_ends = "2026-11-24 12:15:00"
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0007")
        conn.execute(sa.text(
            "INSERT INTO incidents (host, state, dry_run, opened_at, updated_at, fence_deadline, epoch, nudges, "
            "fence_method, fence_attempt) VALUES ('compute-01', 'returning', false, :t, :t, :end, 0, 0, 0, 0), "
            "('compute-02', 'fencing', false, :t, :t, :end, 0, 0, 0, 0)"), {"t": "2026-11-24 12:00:00", "end": wait_ends})
    upgrade(engine)
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT host, return_deadline FROM incidents")).all())
    assert {h: str(v)[:19] if v else v for h, v in rows.items()} == {"compute-01": wait_ends, "compute-02": None}
    engine.dispose()

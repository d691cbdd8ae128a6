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

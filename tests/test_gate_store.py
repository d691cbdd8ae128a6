"""What the gates keep in the database, over random sequences: the storm mark never moves
back, and a wait is on the timeline once per change of gate."""

import itertools
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.store import Store, create_engine, upgrade
from bridge.store import gating as reads
from bridge.store.tables import incidents, timeline

START = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
HOSTS = (f"compute-{n}" for n in itertools.count())  # one incident per example


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('gates') / 'bridge.sqlite'}")
    upgrade(engine)
    yield Store(engine)
    engine.dispose()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(-600, 600), min_size=1, max_size=8))
def test_the_storm_mark_is_the_latest_ever_marked(store, offsets):
    with store.engine.begin() as conn:
        conn.execute(sa.text("delete from gate_marks"))
    for offset in offsets:  # processes whose clocks and reads come in any order
        store.mark_storm(START + timedelta(seconds=offset))
    with store.reader.connect() as conn:
        assert reads.mark(conn, reads.STORM) == START + timedelta(seconds=max(offsets))


# a step: a wait on one of two gates, or a transition (held, then retried)
STEPS = st.lists(st.sampled_from(["rate_limit", "min_duration", "transition"]), min_size=1, max_size=10)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(STEPS)
def test_a_wait_is_written_once_per_run_of_the_same_gate(store, steps):
    with store.engine.begin() as conn:
        incident_id = conn.execute(incidents.insert().values(
            host=next(HOSTS), state="suspected", opened_at=START, updated_at=START,
            dry_run=False)).inserted_primary_key[0]
    expected, last = 0, None
    for n, step in enumerate(steps):
        now = START + timedelta(seconds=n)
        if step == "transition":
            with store.engine.begin() as conn:
                conn.execute(timeline.insert().values(incident_id=incident_id, at=now, from_state="suspected",
                                                      to_state="held", cause="gate x", actor="bridge", detail={}))
            last = None
            continue
        store.note_wait(incident_id, f"gate {step}: waiting", {"gate": step, "waiting": True}, now)
        expected += step != last
        last = step
    with store.reader.connect() as conn:
        written = conn.execute(sa.select(sa.func.count()).select_from(timeline).where(
            timeline.c.incident_id == incident_id, timeline.c.from_state == timeline.c.to_state)).scalar()
    assert written == expected

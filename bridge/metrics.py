"""Prometheus metrics, correct under several gunicorn workers.

`hostdown-bridge serve` gives the workers a private PROMETHEUS_MULTIPROC_DIR before any
sample exists (`multiprocess_dir`): each worker writes its samples to files there, and
/metrics sums the files of every worker, live or gone (a counter never goes back). Without
it (tests, `hostdown-bridge engine`) each process counts in its own registry. Incidents by
state are read from the database at scrape time, so every worker reports the same numbers.

Every metric here has labels: a labelled metric makes its value store when a label set is
first used, which is after gunicorn's fork, in the worker, with the multiprocess value class.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from sqlalchemy.exc import SQLAlchemyError

ENV = "PROMETHEUS_MULTIPROC_DIR"
REGISTRY = CollectorRegistry()  # this process's own samples, when not in multiprocess mode

# seconds: a BMC answers in seconds, a person in minutes, a held incident in hours
STAGE_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400)
CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)

SIGNALS = Counter("hostdown_bridge_signals_received", "Signals stored from a monitoring webhook, repeats "
                  "included", ["source", "status"], registry=REGISTRY)
SHED = Counter("hostdown_bridge_requests_shed", "Requests refused over server.rate_limit",
               ["api", "source"], registry=REGISTRY)
TRANSITIONS = Counter("hostdown_bridge_transitions", "Incident state changes made by the engine",
                      ["from_state", "to_state"], registry=REGISTRY)
HOLDS = Counter("hostdown_bridge_holds", "Incidents held (or failed) for a person, by the gate or step "
                "that stopped them", ["gate"], registry=REGISTRY)
GATE_FIRED = Counter("hostdown_bridge_gate_fired", "Steps a safety gate held or made wait, by gate",
                     ["gate", "effect"], registry=REGISTRY)
FENCING = Counter("hostdown_bridge_fencing_attempts", "Fencing requests and checks, by driver and result",
                  ["driver", "step", "result"], registry=REGISTRY)
FENCING_SECONDS = Histogram("hostdown_bridge_fencing_duration_seconds", "Time a fencing request or check took",
                            ["driver", "step", "result"], buckets=CALL_BUCKETS, registry=REGISTRY)
NOVA = Counter("hostdown_bridge_nova_calls", "Nova steps (read, then change what is not yet true), "
               "retries included, by call and result", ["call", "result"], registry=REGISTRY)
NOVA_SECONDS = Histogram("hostdown_bridge_nova_call_duration_seconds", "Time a Nova step took, retries included",
                         ["call", "result"], buckets=CALL_BUCKETS, registry=REGISTRY)
STAGES = Histogram("hostdown_bridge_incident_stage_seconds",
                   "An incident's timeline: received = alert startsAt to stored by the bridge; fenced = "
                   "stored to fenced; forced_down = fenced to Nova force-down; alert_to_forced_down = "
                   "alert startsAt to Nova force-down", ["stage"], buckets=STAGE_BUCKETS, registry=REGISTRY)


# ---- multiprocess mode ---------------------------------------------------------------------

def multiprocess() -> bool:
    return bool(os.environ.get(ENV))


@contextlib.contextmanager
def multiprocess_dir():
    """A directory for the workers' samples while the server runs: $PROMETHEUS_MULTIPROC_DIR
    if the operator set one (emptied first: old files would add old counts), else a private
    temporary one, removed afterwards."""
    given = os.environ.get(ENV)
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="hostdown-bridge-metrics-"))
    for old in path.glob("*.db"):
        old.unlink()
    os.environ[ENV] = str(path)
    values.ValueClass = values.get_value_class()  # chosen at import; samples are made after this
    try:
        yield path
    finally:
        if not given:
            shutil.rmtree(path, ignore_errors=True)


def worker_gone(pid: int) -> None:
    """gunicorn's child_exit: drop a dead worker's live-gauge files (its counters stay summed)."""
    if multiprocess():
        mark_process_dead(pid)


class _StoreCollector:
    """Counts read from the database at scrape time: the same in every worker process."""

    def __init__(self, store):
        self.store = store

    def collect(self):
        up = GaugeMetricFamily("hostdown_bridge_database_up", "1 if this worker could read the database "
                               "at this scrape, else 0 (and no incident counts)", labels=[])
        try:
            counts = self.store.counts()
            server_rows = self.store.server_action_counts()
        except SQLAlchemyError:
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        incidents = GaugeMetricFamily("hostdown_bridge_incidents", "Incidents by state", labels=["state"])
        for state, n in counts["incidents"].items():
            incidents.add_metric([state], n)
        signals = GaugeMetricFamily("hostdown_bridge_signals", "Stored signals by source", labels=["source"])
        for source, n in counts["signals"].items():
            signals.add_metric([source], n)
        servers = GaugeMetricFamily("hostdown_bridge_server_actions",
                                    "Open incidents' server rows by action and status", labels=["action", "status"])
        for (action, status), n in server_rows.items():
            servers.add_metric([action, status], n)
        return [up, incidents, signals, servers]


def exposition(store, *read_now) -> tuple[bytes, str]:
    """The /metrics body: every worker's samples (or this process's), the store's counts and
    the collectors given (read at scrape time)."""
    registry = CollectorRegistry()
    for collector in (_StoreCollector(store), *read_now):
        registry.register(collector)
    if multiprocess():
        MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(registry) + generate_latest(REGISTRY)
    return body, CONTENT_TYPE_LATEST


# ---- what the bridge counts --------------------------------------------------------------

def signal_received(source: str, status: str) -> None:
    SIGNALS.labels(source, status).inc()


def effect_done(effect, outcome, seconds: float) -> None:
    """One effect the executor carried out: a fencing step or a Nova call."""
    if effect.touches_nova:
        call = outcome.detail.get("call") or re.sub(r"(?<!^)(?=[A-Z])", "_", type(effect).__name__).lower()
        result = "error" if outcome.error else "dry_run" if outcome.dry_run else \
            "skipped" if outcome.detail.get("skipped") else "done"
        NOVA.labels(call, result).inc()
        NOVA_SECONDS.labels(call, result).observe(seconds)
        return
    driver = getattr(effect, "method", "unknown")  # the host's fencing method this step tried
    step = "check" if not effect.mutates else "request"
    result = "error" if outcome.error else "refused" if outcome.refused else "proof" if outcome.proof else \
        "dry_run" if outcome.dry_run else "pending" if step == "check" else "requested"
    FENCING.labels(driver, step, result).inc()
    FENCING_SECONDS.labels(driver, step, result).observe(seconds)


def hold_cause(from_state: str, decision, outcome) -> str:
    """The gate a hold names, or the step that stopped the incident."""
    if decision.detail.get("gate"):
        return decision.detail["gate"]
    if outcome is not None and outcome.error:
        return "nova_error" if outcome.effect.touches_nova else "fencing_error"
    if outcome is not None and outcome.refused:
        return "fencing_refused"
    return "fencing_timeout" if from_state == "fencing" else "other"


def _since(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())  # a sender's clock may run ahead


def transition(from_state: str, to_state: str, now: datetime, marks: dict | None) -> None:
    """A committed transition; `marks` (the incident's first alert and when it was fenced) for
    the transitions that end a stage of the timeline."""
    TRANSITIONS.labels(from_state, to_state).inc()
    marks = marks or {}
    stages = {}
    if to_state == "fencing" and from_state == "suspected":
        stages["received"] = _since(marks.get("starts_at"), marks.get("received_at"))
    elif to_state == "fenced":
        stages["fenced"] = _since(marks.get("received_at"), now)
    elif to_state == "forced_down":
        stages["forced_down"] = _since(marks.get("fenced_at"), now)
        stages["alert_to_forced_down"] = _since(marks.get("starts_at"), now)
    for stage, seconds in stages.items():
        if seconds is not None:
            STAGES.labels(stage).observe(seconds)


def held(gate: str) -> None:
    HOLDS.labels(gate).inc()


MARKED = frozenset({"fencing", "fenced", "forced_down"})  # transitions into these need marks

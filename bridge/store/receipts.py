"""The upsert that stores a webhook's signals, as driver SQL.

The receipts' group commit runs it for every alert the bridge accepts. As a Core statement,
SQLAlchemy processes each row's parameters by name, and that cost more than SQLite's own
work. Here the SQL is written once per number of rows and run with exec_driver_sql (errors
still wrapped as SQLAlchemy's), and each value is converted by its column type's own bind
processor (the same conversion SQLAlchemy makes, so every reader reads it back alike), in
one list per row. The same statement runs on SQLite and PostgreSQL; only the placeholder
differs.
"""

from __future__ import annotations

import functools
from typing import Any, Iterable

from bridge.store.tables import signals

# the columns a webhook stores for each signal, in the statement's order
COLUMNS = ("dedup_key", "source", "fingerprint", "status", "labels", "annotations", "starts_at", "ends_at",
           "received_at", "last_seen_at", "repeats", "raw", "rule", "kind", "candidate_host", "note")
# rows per statement: 16 columns each stays far below SQLite's and PostgreSQL's parameter limits
ROWS_PER_STATEMENT = 500


class SignalUpsert:
    """INSERT ... ON CONFLICT (dedup_key): a signal seen before only bumps its repeat count."""

    def __init__(self, dialect):
        self.placeholder = "?" if dialect.paramstyle == "qmark" else "%s"
        processors = [signals.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in COLUMNS]
        self.processors = tuple(enumerate(processors))

    @functools.lru_cache(maxsize=64)
    def sql(self, rows: int) -> str:
        row = "(" + ", ".join([self.placeholder] * len(COLUMNS)) + ")"
        return (f"INSERT INTO signals ({', '.join(COLUMNS)}) VALUES {', '.join([row] * rows)} "
                "ON CONFLICT (dedup_key) DO UPDATE SET repeats = signals.repeats + 1, "
                "last_seen_at = excluded.last_seen_at RETURNING dedup_key, id, repeats")

    def params(self, values: dict[str, Any]) -> list:
        out = [values[c] for c in COLUMNS]
        for i, process in self.processors:
            if process is not None:
                out[i] = process(out[i])
        return out

    def run(self, conn, rows: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
        """Store `rows` (each dedup_key once) in the connection's transaction: dedup_key -> (id, repeats)."""
        found: dict[str, tuple[int, int]] = {}
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start:start + ROWS_PER_STATEMENT]
            # driver SQL, yet through SQLAlchemy: its errors wrapped (a 503, not a 500), a lost connection invalidated
            result = conn.exec_driver_sql(self.sql(len(chunk)), tuple(_flat(self.params(r) for r in chunk)))
            found.update((key, (signal_id, repeats)) for key, signal_id, repeats in result)
        return found


def _flat(rows: Iterable[list]) -> list:
    return [value for row in rows for value in row]

"""Carries out the server effects against Nova: list once, issue concurrently, read back.

Every batch reads Nova's view first (the servers still on the host, the evacuations from it),
so a batch repeated after a crash never issues an evacuation Nova already holds. A batch locks
all its servers, then evacuates them: a crash between the two finds the bridge's lock reason
and evacuates each once, without locking it again. Requests go out on a bounded thread pool;
the pool's threads share one keystoneauth session (one token).
A failure of one server's request is that row's error; it never stops the others.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Callable, Iterable

from bridge import servers as sv
from bridge.nova import Nova, NovaError
from bridge.servers import ServerAction, ServersPolicy

log = logging.getLogger(__name__)

# Nova's and our clocks may differ a little: look back this much further for evacuations
CLOCK_MARGIN = timedelta(seconds=60)
# plan()'s listing stands for Nova's view in the batches that follow it this soon, for servers
# not asked for before: a batch's own re-read is as old by its last request. Kept in memory only:
# after a crash, a replayed batch always reads Nova first.
FRESH_LISTING = 5.0


def _iso(when: datetime) -> str:
    return when.astimezone().isoformat()


class ServerWork:
    def __init__(self, nova: Nova, concurrency: int):
        self.nova = nova
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="nova-servers")
        self._listed: dict[str, tuple[float, dict]] = {}  # host -> (monotonic time, its servers by id)

    def _each(self, fn: Callable[[ServerAction], ServerAction], rows: Iterable[ServerAction]) -> list[ServerAction]:
        return list(self.pool.map(fn, rows))

    # ---- list ------------------------------------------------------------------------------

    def plan(self, host: str, policy: ServersPolicy, now: datetime, rules: tuple[str, ...] = ()) -> list[ServerAction]:
        facts = self.pool.submit(self.nova.host_facts, host)  # both reads at once
        found = self.nova.servers(policy.page_size, compute_host=host)
        self._listed[host] = (time.monotonic(), {s.id: s for s in found})
        facts = replace(facts.result(), rules=rules)
        images: dict[str, dict] = {}
        if policy.opt_in.image_properties:
            for image_id in {s.image_id for s in found if s.image_id}:
                images[image_id] = self.nova.image_properties(image_id)
        return sv.plan(policy, facts, found, now, images)

    # ---- issue -----------------------------------------------------------------------------

    def issue(self, host: str, rows: list[ServerAction], policy: ServersPolicy, reason: str,
              now: datetime) -> list[ServerAction]:
        since = _iso(min(r.listed_at or now for r in rows) - CLOCK_MARGIN)
        evacuations = self.pool.submit(self.nova.evacuations, host, since) \
            if any(r.action == sv.EVACUATE for r in rows) else None
        listed, on_host = self._listed.get(host, (0.0, None))
        if on_host is None or time.monotonic() - listed > FRESH_LISTING or any(sv.tries(r) for r in rows):
            self._listed.pop(host, None)
            on_host = {s.id: s for s in self.nova.servers(policy.page_size, compute_host=host)}
        evacuations = {} if evacuations is None else evacuations.result()
        ready: list[str] = []  # locked (or needing no lock): evacuated in the second round

        def first(row: ServerAction) -> ServerAction:
            if row.action == sv.EVACUATE:
                row, go = self._prepare(row, on_host.get(row.server_id), evacuations.get(row.server_id, []),
                                        policy, reason, now)
                if go:
                    ready.append(row.server_id)
                return row
            return self._reset(row, on_host.get(row.server_id), now)

        # every lock before any evacuation: the batch's locks are answered before the
        # conductor, scheduler and placement work its evacuations start competes with them
        rows = self._each(self._guarded(first, policy), rows)
        go = set(ready)
        return self._each(self._guarded(lambda row: self._evacuate(row, policy, now) if row.server_id in go
                                        else row, policy), rows)

    def _guarded(self, fn: Callable[[ServerAction], ServerAction],
                 policy: ServersPolicy) -> Callable[[ServerAction], ServerAction]:
        def one(row: ServerAction) -> ServerAction:
            try:
                return fn(row)
            except NovaError as exc:  # a read before any request failed
                return self._refused(row, str(exc), policy)
            except Exception as exc:  # one server's surprise is its row's error, not the batch's
                log.exception("server %s: request failed", row.server_id)
                return self._refused(row, f"{type(exc).__name__}: {exc}", policy)
        return one

    def _call(self, row: ServerAction, what: str, body: dict) -> ServerAction:
        record = self.nova.server_action(row.server_id, what, body)
        calls = [*row.detail.get("calls", []), {"call": what, "seconds": record.seconds}]
        return replace(row, step=what, detail={**row.detail, "calls": calls})

    def _prepare(self, row: ServerAction, fresh, migrations: list[dict], policy: ServersPolicy, reason: str,
                 now: datetime) -> tuple[ServerAction, bool]:
        """Before an evacuation: the row, and whether to evacuate it now (reset-state and lock done)."""
        requested = {**row.detail, "requested_at": now.isoformat()}
        if sv.issued_already(row, migrations) or (fresh is not None and fresh.task_state == "rebuilding"):
            # issued before a crash: Nova holds it; read it back, never issue again
            return replace(row, status=sv.REQUESTED, step="evacuate", attempts=max(len(migrations), row.attempts),
                           detail={**requested, "found_issued": True}), False
        if fresh is None:  # no longer on the host and no evacuation of ours: read back where it went
            return replace(row, status=sv.REQUESTED, step="evacuate", detail={**requested, "left_host": True}), False
        try:
            if fresh.task_state is not None:  # Nova evacuates no server with a task in flight
                row = self._call(row, "reset_state", {"os-resetState": {"state": "error"}})
            if policy.lock:
                if fresh.locked:
                    ours = fresh.locked_reason == reason
                    row = replace(row, locked_by_bridge=ours, user_locked=row.user_locked or not ours)
                else:
                    row = replace(self._call(row, "lock", {"lock": {"locked_reason": reason}}),
                                  locked_by_bridge=True)
        except NovaError as exc:
            return self._refused(row, str(exc), policy), False
        return row, True

    def _evacuate(self, row: ServerAction, policy: ServersPolicy, now: datetime) -> ServerAction:
        try:
            row = self._call(row, "evacuate", {"evacuate": {"host": row.target_host} if row.target_host else {}})
        except NovaError as exc:
            # not counted as issued: if Nova took it after all, the next batch finds its migration
            return self._refused(row, str(exc), policy)
        return replace(row, status=sv.REQUESTED, attempts=row.attempts + 1, error=None,
                       detail={**row.detail, "requested_at": now.isoformat()})

    def _reset(self, row: ServerAction, fresh, now: datetime) -> ServerAction:
        if fresh is not None and fresh.vm_state == "error" and fresh.task_state is None:
            return replace(row, status=sv.DONE, step="reset_state", detail={**row.detail, "already": "error"})
        if fresh is None:
            return replace(row, status=sv.SKIPPED, step="gone", error="no longer on the host")
        row = self._call(row, "reset_state", {"os-resetState": {"state": "error"}})
        return replace(row, status=sv.DONE)

    def _refused(self, row: ServerAction, error: str, policy: ServersPolicy) -> ServerAction:
        """Nova refused (or kept failing) this server's request: again while attempts remain."""
        row = replace(row, error=error[:1000], detail={**row.detail, "refusals": row.detail.get("refusals", 0) + 1})
        if row.action == sv.EVACUATE and sv.tries(row) < policy.attempts:
            return replace(row, status=sv.PENDING)
        row = replace(row, status=sv.FAILED)
        return self._unlock(row) if row.locked_by_bridge else row

    # ---- read back -------------------------------------------------------------------------

    def poll(self, host: str, rows: list[ServerAction], policy: ServersPolicy, reason: str,
             now: datetime) -> list[ServerAction]:
        since = min(r.listed_at or now for r in rows) - CLOCK_MARGIN
        evacuations = self.nova.evacuations(host, _iso(since))
        # a server whose evacuation Nova is still carrying out is not read (nor is it late yet):
        # while a host's worth of them run, a read-back is one list of migrations
        ready = [r for r in rows if not sv.underway(r, evacuations.get(r.server_id, []), now, policy)]
        if len(ready) > policy.concurrency:  # many at once: one listing beats a request each
            seen = {s.id: s for s in self.nova.servers(policy.page_size, changes_since=_iso(since))}
        else:
            seen = {}

        def one(row: ServerAction) -> ServerAction:
            try:
                server = seen.get(row.server_id) or self.nova.server(row.server_id)
                if server is not None and server.vm_state == "deleted":
                    server = None
                row, follow = sv.settle(row, server, evacuations.get(row.server_id, []), host, now, policy,
                                        reason)
                if follow == sv.STOP:
                    row = self._call(row, "stop", {"os-stop": None})
                    row = replace(row, detail={**row.detail, "stop_issued": True})
                elif follow == sv.UNLOCK:
                    row = self._unlock(row)
                return row
            except NovaError as exc:  # read again next round
                return replace(row, detail={**row.detail, "last_poll_error": str(exc)[:500]})

        ready_ids = {r.server_id for r in ready}
        return self._each(lambda row: one(row) if row.server_id in ready_ids else row, rows)

    # ---- the incident closed by a person ------------------------------------------------------

    def release(self, rows: list[ServerAction], reason: str) -> list[ServerAction]:
        """Unlock each server whose lock is the bridge's (its reason); never another's lock. A row
        Nova could not answer for keeps no "released" mark: it is asked again."""
        def one(row: ServerAction) -> ServerAction:
            try:
                server = self.nova.server(row.server_id)
                if server is not None and server.locked and server.locked_reason == reason:
                    row = replace(self._call(row, "unlock", {"unlock": None}), locked_by_bridge=False)
                    return replace(row, detail={**row.detail, "released": "unlocked"})
                return replace(row, locked_by_bridge=False, detail={**row.detail, "released": "not ours"})
            except NovaError as exc:
                return replace(row, detail={**row.detail, "release_error": str(exc)[:500]})

        return self._each(one, rows)

    def _unlock(self, row: ServerAction) -> ServerAction:
        """Unlock what the bridge locked (never a user's lock); a row still requested is done."""
        row = replace(self._call(row, "unlock", {"unlock": None}), locked_by_bridge=False)
        return replace(row, status=sv.DONE) if row.status == sv.REQUESTED else row

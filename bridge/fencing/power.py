"""The adapter that turns a PowerDriver (redfish, ipmi, fence_agent, ironic) and a host's
FenceTarget into a FencingDriver: request() powers off, check() reads the power state back.
Only "off" read back is proof; on, unknown or an error is pending, and decide() gives up on
the attempt at its deadline.

BMC calls run in one bounded pool per process (fencing.concurrency calls in flight), never
on the engine's threads: an engine thread waits at most fencing.step_wait for a call (a
healthy BMC answers well within it, so the common case costs no extra step). A slower call
goes on in the pool; its result is kept for the next check of that attempt, and the engine
is woken for the incident when it comes. So a slow or dead BMC holds a pool slot for at
most its target's time-out, never an engine thread, and other incidents go on.

The engine's lease (one worker at a time per incident, one open incident per host) makes
sure two workers never request a power-off of the same host at once; a crash after the
power-off resumes with check(), which only reads back (powering off again, on the next
attempt, is harmless when the host is off).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError as FutureTimeout
from datetime import datetime, timedelta
from typing import Any, Callable, Hashable

from bridge.effects import Evidence, FenceCheck, FenceRequest, Outcome
from bridge.fencing.base import OFF, FenceError, FenceTarget, PowerDriver
from bridge.fencing.bmccall import scrub
from bridge.incidents import Incident
from bridge.targets import TargetError, Targets

log = logging.getLogger(__name__)

ACTOR = "hostdown-bridge"
STALE = 600.0
# what each driver asks the BMC for, in its own words (for evidence and the timeline)
REQUESTED = {"redfish": "ComputerSystem.Reset ForceOff", "ipmi": "chassis power off",
             "fence_agent": "--action=off", "ironic": "node power off"}


class CallPool:
    """BMC calls, at most `size` at once. The caller waits at most `wait` seconds; a call that
    takes longer stays here, keyed, until a later caller collects its result, and `on_late`
    is told its key's incident when it ends."""

    def __init__(self, size: int, wait: float, on_late: Callable[[int], None] | None = None):
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="fence")
        self.wait = wait
        self.on_late = on_late
        self._lock = threading.Lock()
        self._pending: dict[Hashable, tuple[Future, float]] = {}

    def pending(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._pending

    def run(self, key: Hashable, incident_id: int, fn: Callable[[], Any]) -> tuple[bool, Any, float]:
        """(done, result or exception, seconds the call took) for the call under key: the one
        already running, or a new one. Not done: it goes on in the pool."""
        with self._lock:
            running = self._pending.get(key)
            if running is None:
                self._forget_stale()
                started = time.monotonic()
                running = (self._pool.submit(self._timed, fn, started), started)
                self._pending[key] = running
        future, started = running
        try:
            result, error, seconds = future.result(timeout=self.wait)
        except FutureTimeout:
            if self.on_late is not None:
                future.add_done_callback(lambda _: self.on_late(incident_id))
            return False, None, time.monotonic() - started
        with self._lock:
            self._pending.pop(key, None)
        return True, error if error is not None else result, seconds

    def _forget_stale(self) -> None:
        """Results nobody came for (the attempt ended meanwhile): kept STALE seconds at most."""
        if len(self._pending) < 64:
            return
        cutoff = time.monotonic() - STALE
        for key, (future, started) in list(self._pending.items()):
            if future.done() and started < cutoff:
                del self._pending[key]

    @staticmethod
    def _timed(fn: Callable[[], Any], started: float) -> tuple[Any, BaseException | None, float]:
        try:
            return fn(), None, time.monotonic() - started
        except Exception as exc:  # any failure of a BMC call is "no proof", never the engine's crash
            return None, exc, time.monotonic() - started

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class PowerFencing:
    """One method (a PowerDriver) of every host's list, as a FencingDriver."""

    def __init__(self, power: PowerDriver, targets: Targets, pool: CallPool, poll_interval: float):
        self.name = power.name
        self.power = power
        self.targets = targets
        self.pool = pool
        self.poll = timedelta(seconds=poll_interval)
        self._off_ms: dict[tuple, float | None] = {}  # this process's power-offs by attempt: how long each took

    @staticmethod
    def _key(kind: str, effect, incident: Incident) -> tuple:
        return kind, incident.id, effect.index, effect.attempt

    def request(self, effect: FenceRequest, incident: Incident, *, dry_run: bool) -> Outcome:
        try:
            target = self.targets.target(incident.host, effect.index)
        except TargetError as exc:
            return Outcome(effect, refused=str(exc))
        requested = REQUESTED.get(self.name, "power off")
        detail: dict[str, Any] = {"target": target.public(), "requested": requested}
        if dry_run:
            return Outcome(effect, f"dry-run: would power off {incident.host} with {self.name} at {target.address} "
                                   f"({requested})", detail, dry_run=True)
        key = self._key("off", effect, incident)
        done, result, seconds = self.pool.run(key, incident.id, lambda: self.power.power_off(target))
        if done and isinstance(result, BaseException):
            error = scrub(f"{type(result).__name__}: {result}" if not isinstance(result, FenceError) else str(result),
                          target)
            return Outcome(effect, error=f"{self.name} power off of {incident.host} at {target.address}: {error}",
                           detail={**detail, "error": error, "power_off_ms": _ms(seconds)})
        if len(self._off_ms) > 1024:
            self._off_ms.clear()  # only evidence detail is lost
        self._off_ms[key[1:]] = _ms(seconds) if done else None
        state = f"done in {_ms(seconds):g} ms" if done else "sent; the BMC is still answering"
        return Outcome(effect, f"{self.name}: {requested} of {incident.host} at {target.address}: {state}",
                       {**detail, "power_off_ms": _ms(seconds) if done else None})

    def check(self, effect: FenceCheck, incident: Incident, evidence: tuple[Evidence, ...],
              now: datetime) -> Outcome:
        try:
            target = self.targets.target(incident.host, effect.index)
        except TargetError as exc:
            return Outcome(effect, refused=str(exc))
        off_key = self._key("off", effect, incident)
        if self.pool.pending(off_key):  # the power-off itself is still under way (or just ended)
            done, result, _ = self.pool.run(off_key, incident.id, lambda: None)
            if not done:
                return Outcome(effect, recheck_at=now + self.poll)
            if isinstance(result, BaseException):
                error = scrub(str(result), target)
                return Outcome(effect, error=f"{self.name} power off of {incident.host} at {target.address}: {error}",
                               detail={"target": target.public(), "error": error})
        done, result, seconds = self.pool.run(self._key("state", effect, incident), incident.id,
                                              lambda: self.power.power_state(target))
        if not done:
            return Outcome(effect, recheck_at=now + self.poll)
        if isinstance(result, BaseException) or result != OFF:
            read = scrub(str(result), target) if isinstance(result, BaseException) else result
            return Outcome(effect, detail={"target": target.public(), "read": read, "read_ms": _ms(seconds)},
                           recheck_at=now + self.poll)
        return Outcome(effect, proof=self._proof(effect, incident, target, now, seconds))

    def _proof(self, effect: FenceCheck, incident: Incident, target: FenceTarget, now: datetime,
               read_seconds: float) -> Evidence:
        read_at = now + timedelta(seconds=read_seconds)
        off_ms = self._off_ms.pop((incident.id, effect.index, effect.attempt), None)
        if incident.fence_deadline is not None:  # the attempt's deadline is its request time + time-out
            requested_at = incident.fence_deadline - timedelta(seconds=target.timeout)
        else:
            requested_at = None
        detail = {
            "target": target.public(), "method": effect.index + 1, "attempt": effect.attempt + 1,
            "requested": REQUESTED.get(self.name, "power off"),
            "requested_at": requested_at.isoformat() if requested_at else None,
            "state": OFF, "read_at": read_at.isoformat(),
            "durations_ms": {"power_off": off_ms, "read_back": _ms(read_seconds),
                             "request_to_read": _ms((read_at - requested_at).total_seconds()) if requested_at else None},
        }
        return Evidence(None, incident.id, incident.host, self.name, ACTOR,
                        f"power state read back off from {target.address}", read_at, detail)

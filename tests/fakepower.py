"""A PowerDriver in memory, for tests of fencing without a BMC."""

from __future__ import annotations

import threading

from bridge.fencing.base import OFF, ON, FenceError, FenceTarget


class FakePower:
    """Hosts' power states; per host, scripted failures and read-backs; every call recorded.

    reads[host]: states power_state() answers in turn after a power-off (then OFF); an
    Exception in it is raised. off_errors[host]: errors power_off() raises in turn.
    gate: when set, calls wait for it (a slow BMC).
    """

    name = "redfish"

    def __init__(self):
        self.state: dict[str, str] = {}
        self.reads: dict[str, list] = {}
        self.off_errors: dict[str, list[Exception]] = {}
        self.calls: list[tuple[str, str, str | None]] = []  # (call, host, password seen)
        self.gate: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.in_flight: dict[str, int] = {}
        self.most_in_flight: dict[str, int] = {}

    def _enter(self, call: str, target: FenceTarget) -> None:
        with self._lock:
            self.calls.append((call, target.host, target.password.reveal() if target.password else None))
            n = self.in_flight[target.host] = self.in_flight.get(target.host, 0) + 1
            self.most_in_flight[target.host] = max(n, self.most_in_flight.get(target.host, 0))
        if target.host in self.gate:
            self.gate[target.host].wait(10)

    def _leave(self, target: FenceTarget) -> None:
        with self._lock:
            self.in_flight[target.host] -= 1

    def power_off(self, target: FenceTarget) -> None:
        self._enter("power_off", target)
        try:
            errors = self.off_errors.get(target.host)
            if errors:
                raise errors.pop(0)
            self.state[target.host] = OFF
        finally:
            self._leave(target)

    def power_state(self, target: FenceTarget) -> str:
        self._enter("power_state", target)
        try:
            queued = self.reads.get(target.host)
            if queued and self.state.get(target.host) == OFF:
                answer = queued.pop(0)
                if isinstance(answer, Exception):
                    raise answer
                return answer
            return self.state.get(target.host, ON)
        finally:
            self._leave(target)

    def count(self, call: str, host: str) -> int:
        return sum(1 for c, h, _ in self.calls if (c, h) == (call, host))


def wrong_password(host: str) -> FenceError:
    return FenceError(f"redfish power off of {host} at https://{host}-bmc: HTTP 401 Unauthorized")

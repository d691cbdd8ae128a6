"""A fast in-memory stand-in for bridge.nova.Nova, for unit tests of the engine.

It mirrors Nova's own rules that matter here: force-down before disable is allowed
in any order by the API, but a call on an unknown host fails.
"""

from __future__ import annotations

from bridge.nova import CallRecord, NovaError


CALLS = ("compute_services", "force_down", "disable")


class FakeNova:
    def __init__(self, hosts: list[str]):
        self.services = {h: {"host": h, "service_id": f"id-{h}", "state": "up", "status": "enabled",
                             "forced_down": False, "zone": "nova", "disabled_reason": None} for h in hosts}
        self.calls: list[tuple[str, str]] = []  # mutating calls that reached "Nova"
        self.failures: dict[str, list[NovaError]] = {call: [] for call in CALLS}

    def fail_next(self, call: str, *errors: NovaError) -> None:
        """The next calls of `call` (one of CALLS) raise these errors, in order; other calls succeed."""
        self.failures[call].extend(errors)

    def unused_failures(self) -> dict[str, list[NovaError]]:
        return {call: errors for call, errors in self.failures.items() if errors}

    def _maybe_fail(self, call: str) -> None:
        if self.failures[call]:
            raise self.failures[call].pop(0)

    def compute_services(self) -> list[dict]:
        self._maybe_fail("compute_services")
        return [{k: v for k, v in s.items() if k != "disabled_reason"} for s in self.services.values()]

    def _service(self, host: str) -> dict:
        if host not in self.services:
            raise NovaError(f"no nova-compute service on host {host!r}", [])
        return self.services[host]

    def force_down(self, host: str, *, dry_run: bool) -> CallRecord:
        self._maybe_fail("force_down")
        svc = self._service(host)
        record = CallRecord("force_down", host, dry_run=dry_run, request={"forced_down": True})
        if svc["forced_down"]:
            record.skipped = "already forced down"
        elif not dry_run:
            svc.update(forced_down=True, state="down")
            self.calls.append(("force_down", host))
        return record

    def disable(self, host: str, reason: str, *, dry_run: bool) -> CallRecord:
        self._maybe_fail("disable")
        svc = self._service(host)
        record = CallRecord("disable", host, dry_run=dry_run, request={"disabled_reason": reason})
        if svc["status"] == "disabled":
            record.skipped = "already disabled"
        elif not dry_run:
            svc.update(status="disabled", disabled_reason=reason)
            self.calls.append(("disable", host))
        return record

"""A fast in-memory stand-in for bridge.nova.Nova, for unit tests of the engine.

It mirrors Nova's own rules that matter here: force-down before disable is allowed
in any order by the API, but a call on an unknown host fails.
"""

from __future__ import annotations

from bridge.nova import CallRecord, NovaError


CALLS = ("compute_services", "force_down", "disable", "lock", "unlock", "evacuate", "reset_state", "stop")


class FakeServers:
    """Nova's servers, evacuations and service return, in memory, as bridge.nova reads and calls them.

    evacuate marks the server rebuilding with an `accepted` migration; `finish()` lands every
    accepted evacuation on its target (a stopped server stays stopped), or fails the ones named.
    """

    def __init__(self, nova: "FakeNova"):
        self.nova = nova
        self.servers: dict[str, dict] = {}
        self.migrations: list[dict] = []
        self.actions: list[tuple[str, str]] = []  # (what, server id) that reached "Nova"
        self.refuse: dict[str, str] = {}  # action -> error message, for every server
        self.unforce_refusals = 0  # undo force-down refused (done evacuations) this many times

    def add(self, server_id: str, host: str, vm_state: str = "active", task_state=None, metadata=None,
            locked: bool = False, locked_reason=None, name=None) -> None:
        self.servers[server_id] = {"id": server_id, "name": name or server_id, "host": host, "vm_state": vm_state,
                                   "task_state": task_state, "metadata": dict(metadata or {}), "locked": locked,
                                   "locked_reason": locked_reason, "fault": None}

    def found(self, s: dict):
        from bridge.servers import Found

        svc = self.nova.services.get(s["host"])
        status = None if svc is None else ("DOWN" if svc["forced_down"] or svc["state"] == "down" else "UP")
        return Found(s["id"], s["name"], s["vm_state"], s["task_state"], s["host"], s["locked"],
                     s["locked_reason"], status, dict(s["metadata"]), {}, "image-1", s["fault"])

    def finish(self, fail: tuple[str, ...] = ()) -> None:
        for m in self.migrations:
            if m["status"] != "accepted":
                continue
            s = self.servers[m["server"]]
            if m["server"] in fail:
                m["status"] = "error"
                s.update(task_state=None, fault="No valid host was found")
                continue
            m["status"] = "done"
            s.update(host=m["dest"] or next(h for h in self.nova.services if h != s["host"]), task_state=None)
            if s["vm_state"] == "error":
                s["vm_state"] = "active"


class ServerCalls:
    """FakeNova's server calls (bridge.nova.Nova's names)."""

    def host_facts(self, host):
        from bridge.servers import HostFacts
        return HostFacts(host, self._service(host)["zone"], tuple(self.aggregates.get(host, ())))

    def servers(self, page_size, compute_host=None, changes_since=None):
        self.reads.append(("servers", compute_host))
        return [self.compute.found(s) for s in self.compute.servers.values()
                if compute_host is None or s["host"] == compute_host]

    def server(self, server_id):
        self.reads.append(("server", server_id))
        s = self.compute.servers.get(server_id)
        return None if s is None else self.compute.found(s)

    def evacuations(self, host, since):
        out = {}
        for m in self.compute.migrations:
            if m["source"] == host:
                out.setdefault(m["server"], []).append({"id": m["id"], "status": m["status"], "dest": m["dest"]})
        return out

    def image_properties(self, image_id):
        return {}

    def server_action(self, server_id, what, body):
        self._maybe_fail(what)
        c = self.compute
        if what in c.refuse:
            raise NovaError(f"nova {what} server {server_id} failed: {c.refuse[what]}", [])
        s = c.servers[server_id]
        c.actions.append((what, server_id))
        if what == "lock":
            s.update(locked=True, locked_reason=body["lock"]["locked_reason"])
        elif what == "unlock":
            s.update(locked=False, locked_reason=None)
        elif what == "reset_state":
            s.update(vm_state=body["os-resetState"]["state"], task_state=None)
        elif what == "stop":
            s.update(vm_state="stopped")
        elif what == "evacuate":
            if s["task_state"] is not None:
                raise NovaError(f"nova evacuate server {server_id} failed: 409 task_state {s['task_state']}", [])
            s["task_state"] = "rebuilding"
            c.migrations.append({"id": str(len(c.migrations) + 1), "server": server_id, "source": s["host"],
                                 "dest": body["evacuate"].get("host"), "status": "accepted"})
        return CallRecord(what, server_id, request=body)

    def return_step(self, host, *, enable, ours, dry_run):
        svc = self._service(host)
        if svc["forced_down"]:
            if self.compute.unforce_refusals:
                self.compute.unforce_refusals -= 1
                raise NovaError("nova undo force-down failed: Unable to force up host as `done` evacuation "
                                "migration records remain", [])
            if not dry_run:
                svc.update(forced_down=False)
                self.calls.append(("unforce_down", host))
            return ("returned" if dry_run else "forced_down_undone"), CallRecord("unforce_down", host, dry_run=dry_run)
        if svc["state"] != "up":
            return "down", None
        if svc["status"] == "disabled" and enable and (svc["disabled_reason"] or "").startswith(ours):
            if not dry_run:
                svc.update(status="enabled", disabled_reason=None)
                self.calls.append(("enable", host))
            return "returned", CallRecord("enable", host, dry_run=dry_run)
        return "returned", None


class FakeNova(ServerCalls):
    def __init__(self, hosts: list[str]):
        self.services = {h: {"host": h, "service_id": f"id-{h}", "state": "up", "status": "enabled",
                             "forced_down": False, "zone": "nova", "disabled_reason": None} for h in hosts}
        self.calls: list[tuple[str, str]] = []  # mutating calls that reached "Nova"
        self.failures: dict[str, list[NovaError]] = {call: [] for call in CALLS}
        self.compute = FakeServers(self)  # the hosts' servers
        self.aggregates: dict[str, list[str]] = {}  # host -> its aggregates
        self.reads: list[tuple[str, str | None]] = []

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

    def host_aggregates(self) -> dict[str, list[str]]:
        self._maybe_fail("compute_services")  # read with the services, failing with them
        return {h: list(names) for h, names in self.aggregates.items()}

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

"""Everything that talks to Nova, through openstacksdk. Knows nothing of alerts.

Each mutating call reads the service first and skips what is already true, so a step
repeated after a crash changes nothing twice. Transient failures (time-outs, connection
errors, 5xx) are retried with exponential backoff; the caller sees NovaError when the
attempts run out, or at once for a request Nova refuses (4xx).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import tenacity

log = logging.getLogger(__name__)


class NovaError(RuntimeError):
    def __init__(self, message: str, attempts: list[dict]):
        super().__init__(message)
        self.attempts = attempts


@dataclass
class CallRecord:
    """What a step did (or, in dry-run, would have done) against Nova."""

    call: str
    host: str
    skipped: str | None = None  # why no call was needed
    dry_run: bool = False
    request: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    attempts: list[dict] = field(default_factory=list)

    def as_detail(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], {})}


def _transient(exc: BaseException) -> bool:
    from keystoneauth1 import exceptions as ksa
    from openstack import exceptions as sdk

    if isinstance(exc, (ksa.ConnectFailure, ksa.ConnectTimeout, ksa.RequestTimeout, ksa.DiscoveryFailure)):
        return True
    if isinstance(exc, sdk.HttpException):
        return exc.status_code is None or exc.status_code >= 500
    if isinstance(exc, ksa.HttpError):  # keystoneauth's own, e.g. a 401 while authenticating
        return exc.http_status is None or exc.http_status >= 500
    return isinstance(exc, (ksa.ClientException, ConnectionError, TimeoutError))


def _heartbeat(text: str | None) -> datetime | None:
    """Nova's updated_at: ISO 8601 in UTC, written without an offset."""
    if not text:
        return None
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def service_info(svc) -> dict[str, Any]:
    return {
        "host": svc.host, "service_id": str(svc.id), "state": svc.state, "status": svc.status,
        "forced_down": bool(svc.is_forced_down), "zone": svc.availability_zone,
        # for the gates: who disabled it, and its last heartbeat
        "disabled_reason": svc.disabled_reason, "updated_at": _heartbeat(getattr(svc, "updated_at", None)),
    }


class Nova:
    def __init__(self, cloud: str, *, timeout: float, attempts: int, backoff_max: float,
                 connect: Callable[..., Any] | None = None, pool_size: int = 10):
        self.cloud = cloud
        self.pool_size = pool_size  # keep-alive connections kept to each endpoint
        self.timeout = timeout
        self.attempts = attempts
        self.backoff_max = backoff_max
        self._connect = connect
        self._local = threading.local()  # one connection per thread: sdk proxies are not shared
        self._first = None
        self._first_lock = threading.Lock()

    @property
    def conn(self):
        if getattr(self._local, "conn", None) is None:
            self._local.conn = self._new_connection()
        return self._local.conn

    def _new_connection(self):
        import openstack

        with self._first_lock:
            if self._first is None:
                connect = self._connect or openstack.connect
                self._first = connect(cloud=self.cloud, api_timeout=self.timeout)
                if self._connect is None:
                    keep_alive(self._first.session.session, self.pool_size)
                return self._first
        if self._connect is not None:
            return self._connect(cloud=self.cloud, api_timeout=self.timeout)
        # the first connection's region config holds its keystoneauth session: one token for all threads
        return openstack.connection.Connection(config=self._first.config)

    def _retrying(self, what: str, fn: Callable[[], Any], tries: int | None = None) -> tuple[Any, list[dict]]:
        attempts: list[dict] = []

        def note(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception()
            attempts.append({"attempt": state.attempt_number, "error": f"{type(exc).__name__}: {exc}"[:500]})
            log.warning("nova %s failed (attempt %d): %s", what, state.attempt_number, exc)

        retry = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(tries or self.attempts),
            wait=tenacity.wait_exponential(multiplier=0.5, max=self.backoff_max),
            retry=tenacity.retry_if_exception(_transient),
            before_sleep=note,
            reraise=True,
        )
        try:
            return retry(fn), attempts
        except Exception as exc:
            attempts.append({"attempt": len(attempts) + 1, "error": f"{type(exc).__name__}: {exc}"[:500]})
            raise NovaError(f"nova {what} failed: {type(exc).__name__}: {exc}"[:1000], attempts) from exc

    def compute_services(self) -> list[dict[str, Any]]:
        services, _ = self._retrying("list services", lambda: list(self.conn.compute.services(binary="nova-compute")))
        return [service_info(s) for s in services]

    def host_aggregates(self) -> dict[str, list[str]]:
        """Each host's aggregates, by name (for failure domains: gates.failure_domain)."""
        found, _ = self._retrying("list aggregates", lambda: [(a.name, list(a.hosts or []))
                                                              for a in self.conn.compute.aggregates()])
        out: dict[str, list[str]] = {}
        for name, hosts in found:
            for host in hosts:
                out.setdefault(host, []).append(name)
        return out

    def hypervisor_hostname(self, host: str) -> str | None:
        """The name of the hypervisor the host's nova-compute service runs (for an Ironic-managed
        host, its node), or None if Nova lists none."""
        names, _ = self._retrying(f"find hypervisor of {host}", lambda: [
            h.name for h in self.conn.compute.hypervisors(details=True)
            if (h.service_details or {}).get("host") == host])
        return names[0] if names else None

    def _service(self, host: str):
        found, attempts = self._retrying(
            f"find service on {host}",
            lambda: [s for s in self.conn.compute.services(binary="nova-compute", host=host) if s.host == host],
        )
        if not found:
            raise NovaError(f"no nova-compute service on host {host!r}", attempts)
        return found[0]

    def _change(self, call: str, host: str, dry_run: bool, request: dict[str, Any],
                already: Callable[[Any], str | None], change: Callable[[Any], Any]) -> CallRecord:
        """Read the service; call `change` unless `already` says why not, or in dry-run."""
        started = time.monotonic()
        svc = self._service(host)
        record = CallRecord(call, host, dry_run=dry_run, request={"service_id": str(svc.id), **request})
        record.skipped = already(svc)
        if record.skipped is None and not dry_run:
            _, record.attempts = self._retrying(f"{call.replace('_', ' ')} {host}", lambda: change(svc))
        record.seconds = round(time.monotonic() - started, 4)
        return record

    # host and binary are spelled out below: before 2.53 openstacksdk sends them as given, None included

    def force_down(self, host: str, *, dry_run: bool) -> CallRecord:
        """PUT /os-services/{id} forced_down=true (2.53), or force-down (2.11) on older clouds."""
        return self._change(
            "force_down", host, dry_run, {"forced_down": True},
            already=lambda svc: "already forced down" if svc.is_forced_down else None,
            change=lambda svc: self.conn.compute.update_service_forced_down(
                svc, host=svc.host, binary=svc.binary, forced=True))

    def disable(self, host: str, reason: str, *, dry_run: bool) -> CallRecord:
        """Disable with a reason. Only after force-down: Nova refuses an unreachable compute."""
        return self._change(
            "disable", host, dry_run, {"status": "disabled", "disabled_reason": reason},
            # never overwrite a reason someone else wrote; theirs says more
            already=lambda svc: (f"already disabled ({svc.disabled_reason or 'no reason given'})"
                                 if svc.status == "disabled" else None),
            change=lambda svc: self.conn.compute.disable_service(
                svc, host=svc.host, binary=svc.binary, disabled_reason=reason))

    # ---- the failed host's servers -------------------------------------------------------
    # Server actions go out at 2.73: locked_reason exists (2.73), and an evacuated server comes
    # back in its old state (from 2.95 Nova leaves every evacuated server stopped).

    SERVER_MICROVERSION = "2.73"

    def host_facts(self, host: str):
        """The host's availability zone and aggregates, for per-group policies."""
        from bridge.servers import HostFacts

        svc = self._service(host)
        aggregates, _ = self._retrying("list aggregates", lambda: [
            a.name for a in self.conn.compute.aggregates() if host in (a.hosts or [])])
        return HostFacts(host, svc.availability_zone, tuple(aggregates))

    def servers(self, page_size: int, **query) -> list:
        """Every server the query names, across projects, read in pages of `page_size`. Query by
        openstacksdk's names (compute_host=, changes_since=): a name it does not map, such as host=,
        it filters on the client side against an attribute it does not have."""
        def pages() -> list:
            out, marker = [], {}
            while True:  # a short page is the last: openstacksdk would ask for one more, always empty
                page = list(self.conn.compute.servers(details=True, all_projects=True, limit=page_size,
                                                      paginated=False, **marker, **query))
                out += [found_server(s) for s in page]
                if len(page) < page_size:
                    return out
                marker = {"marker": page[-1].id}

        found, _ = self._retrying(f"list servers {query}", pages)
        return found

    def server(self, server_id: str):
        """One server as Nova shows it now, or None if it is gone."""
        from openstack import exceptions as sdk

        def get():
            try:
                return found_server(self.conn.compute.get_server(server_id))
            except sdk.NotFoundException:
                return None
        found, _ = self._retrying(f"get server {server_id}", get)
        return found

    def evacuations(self, host: str, since: str, page_size: int = 1000) -> dict[str, list[dict]]:
        """Evacuation migrations from the host since `since` (ISO time), per server, oldest first.
        Read as plain JSON, a page at a time (a short page is the last): a read-back asks for this
        every poll, and openstacksdk's objects cost the bridge ~1 ms of CPU each."""
        from openstack import exceptions as sdk

        def read() -> list[dict]:
            out: list[dict] = []
            params = {"source_compute": host, "migration_type": "evacuation", "changes-since": since,
                      "limit": page_size}
            while True:
                response = self.conn.compute.get("/os-migrations", params=params,
                                                  microversion=self.SERVER_MICROVERSION)
                sdk.raise_from_response(response)
                page = response.json().get("migrations", [])
                out += page
                if len(page) < page_size:
                    return out
                params["marker"] = page[-1]["uuid"]

        migrations, _ = self._retrying(f"list evacuations from {host}", read)
        out: dict[str, list[dict]] = {}
        for m in sorted(migrations, key=lambda m: (m.get("created_at") or "", str(m["id"]))):
            out.setdefault(m["instance_uuid"], []).append({"id": str(m["id"]), "status": m["status"],
                                                           "dest": m.get("dest_compute"),
                                                           "created_at": m.get("created_at")})
        return out

    def image_properties(self, image_id: str) -> dict:
        image, _ = self._retrying(f"get image {image_id}", lambda: self.conn.image.get_image(image_id))
        return dict(image.properties or {})

    def server_action(self, server_id: str, what: str, body: dict) -> CallRecord:
        """POST /servers/{id}/action: lock, unlock, evacuate, stop, os-resetState. An evacuation
        is sent once: one that timed out may have landed, and the next batch finds its migration."""
        from openstack import exceptions as sdk

        started = time.monotonic()
        record = CallRecord(what, server_id, request=body)

        def post():
            response = self.conn.compute.post(f"/servers/{server_id}/action", json=body,
                                              microversion=self.SERVER_MICROVERSION)
            sdk.raise_from_response(response)

        _, record.attempts = self._retrying(f"{what} server {server_id}", post,
                                            tries=1 if what == "evacuate" else None)
        record.seconds = round(time.monotonic() - started, 4)
        return record

    def return_step(self, host: str, *, enable: bool, ours: str, dry_run: bool) -> tuple[str, CallRecord | None]:
        """One step of returning the host: undo force-down, else wait for it to report up, else
        enable it (only if the bridge disabled it: `ours` starts its reason). Returns what the
        service now is (`forced_down`, `down`, `returned`) and the call made, if any."""
        svc = self._service(host)
        if svc.is_forced_down:
            record = CallRecord("unforce_down", host, dry_run=dry_run, request={"forced_down": False})
            if not dry_run:
                _, record.attempts = self._retrying(f"undo force-down {host}", lambda: (
                    self.conn.compute.update_service_forced_down(svc, host=svc.host, binary=svc.binary,
                                                                 forced=False)))
            return ("returned" if dry_run else "forced_down_undone"), record
        if svc.state != "up":
            return "down", None
        if svc.status == "disabled" and enable and (svc.disabled_reason or "").startswith(ours):
            record = CallRecord("enable", host, dry_run=dry_run, request={"status": "enabled"})
            if not dry_run:
                _, record.attempts = self._retrying(f"enable {host}", lambda: self.conn.compute.enable_service(
                    svc, host=svc.host, binary=svc.binary))
            return "returned", record
        return "returned", None


def keep_alive(http, size: int) -> None:
    """requests keeps 10 idle connections per host: a pool of more threads than that would close
    each extra connection after its request and open a new one for the next."""
    for adapter in set(http.adapters.values()):
        adapter.init_poolmanager(size, size)  # before any request: no connection is lost


def found_server(s):
    """openstacksdk's Server as bridge.servers reads it."""
    from bridge.servers import Found

    flavor = s.flavor
    extra = (flavor.get("extra_specs") if isinstance(flavor, dict) else getattr(flavor, "extra_specs", None)) or {}
    image = s.image
    image_id = (image.get("id") if isinstance(image, dict) else getattr(image, "id", None)) if image else None
    fault = s.fault if isinstance(s.fault, dict) else None
    return Found(s.id, s.name or "", s.vm_state, s.task_state, s.compute_host, bool(s.is_locked),
                 s.locked_reason, s.host_status, dict(s.metadata or {}), dict(extra), image_id,
                 fault.get("message") if fault else None)

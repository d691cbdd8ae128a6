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
                 connect: Callable[..., Any] | None = None):
        self.cloud = cloud
        self.timeout = timeout
        self.attempts = attempts
        self.backoff_max = backoff_max
        self._connect = connect
        self._local = threading.local()  # one connection per thread: sdk sessions are not shared

    @property
    def conn(self):
        if getattr(self._local, "conn", None) is None:
            import openstack

            connect = self._connect or openstack.connect
            self._local.conn = connect(cloud=self.cloud, api_timeout=self.timeout)
        return self._local.conn

    def _retrying(self, what: str, fn: Callable[[], Any]) -> tuple[Any, list[dict]]:
        attempts: list[dict] = []

        def note(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception()
            attempts.append({"attempt": state.attempt_number, "error": f"{type(exc).__name__}: {exc}"[:500]})
            log.warning("nova %s failed (attempt %d): %s", what, state.attempt_number, exc)

        retry = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
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

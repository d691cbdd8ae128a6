"""bridge.nova against a stand-in openstacksdk connection (the `connect=` seam).

The stand-in answers like openstacksdk does: service objects from compute.services(),
the two mutating calls recorded, and the errors the sdk and keystoneauth raise.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import requests
from keystoneauth1 import exceptions as ksa
from openstack import exceptions as sdk

from bridge.nova import Nova, NovaError

MUTATING = ("update_service_forced_down", "disable_service")


def http_error(status: int, cls=sdk.HttpException) -> sdk.HttpException:
    response = requests.Response()
    response.status_code = status
    return cls(f"HTTP {status}", response=response)


class FakeCompute:
    """openstacksdk's compute proxy, for the calls bridge.nova makes."""

    def __init__(self, services: list[SimpleNamespace]):
        self.services_ = services
        self.calls: list[tuple] = []
        self.errors: dict[str, list[Exception]] = {}  # call name -> errors to raise, in order

    def _call(self, name: str, *args, **kwargs) -> None:
        self.calls.append((name, *args, kwargs))
        if self.errors.get(name):
            raise self.errors[name].pop(0)

    def services(self, **query):
        self._call("services", **query)
        # Nova's ?host= filter is exact, but the bridge must not rely on it: return near-misses too
        return iter([s for s in self.services_ if s.binary == query["binary"]
                     and s.host.startswith(query.get("host", ""))])

    def update_service_forced_down(self, svc, **kwargs):
        self._call("update_service_forced_down", svc, **kwargs)
        svc.is_forced_down, svc.state = kwargs["forced"], "down"

    def disable_service(self, svc, **kwargs):
        self._call("disable_service", svc, **kwargs)
        svc.status, svc.disabled_reason = "disabled", kwargs["disabled_reason"]

    def by_host(self, host: str) -> SimpleNamespace:
        return next(s for s in self.services_ if s.host == host)

    def mutations(self) -> list[tuple]:
        return [c for c in self.calls if c[0] in MUTATING]


def service(host: str, **state) -> SimpleNamespace:
    return SimpleNamespace(**{
        "id": f"uuid-{host}", "host": host, "binary": "nova-compute", "state": "up", "status": "enabled",
        "is_forced_down": False, "disabled_reason": None, "availability_zone": "nova", **state})


@pytest.fixture
def compute():
    # compute-10 first: a lookup of compute-1 that took the first answer would get it
    return FakeCompute([service("compute-10"), service("compute-1"), service("compute-2")])


@pytest.fixture
def sleeps(monkeypatch):
    """tenacity's waits, recorded instead of slept."""
    waited: list[float] = []
    monkeypatch.setattr(time, "sleep", waited.append)
    return waited


@pytest.fixture
def connected():
    return []


@pytest.fixture
def nova(compute, connected):
    def connect(**kwargs):
        connected.append(kwargs)
        return SimpleNamespace(compute=compute)

    return Nova("lab", timeout=7, attempts=4, backoff_max=8, connect=connect)


def test_the_connection_is_made_once_with_the_cloud_and_the_timeout(nova, connected):
    nova.compute_services()
    nova.force_down("compute-1", dry_run=False)
    assert connected == [{"cloud": "lab", "api_timeout": 7}]


def test_compute_services_lists_every_nova_compute(nova, compute):
    compute.services_.append(service("compute-3", binary="nova-scheduler"))
    listed = nova.compute_services()
    assert [s["host"] for s in listed] == ["compute-10", "compute-1", "compute-2"]
    assert listed[1] == {"host": "compute-1", "service_id": "uuid-compute-1", "state": "up", "status": "enabled",
                         "forced_down": False, "zone": "nova", "disabled_reason": None, "updated_at": None}


def test_force_down_puts_forced_down_on_that_host_and_names_host_and_binary(nova, compute):
    record = nova.force_down("compute-1", dry_run=False)
    [(name, svc, kwargs)] = compute.mutations()
    assert (name, svc.host) == ("update_service_forced_down", "compute-1")
    assert kwargs == {"host": "compute-1", "binary": "nova-compute", "forced": True}
    assert record.skipped is None and record.attempts == []
    assert record.request == {"service_id": "uuid-compute-1", "forced_down": True}
    assert compute.by_host("compute-10").is_forced_down is False


def test_force_down_of_a_host_already_forced_down_calls_nothing(nova, compute):
    compute.by_host("compute-1").is_forced_down = True
    record = nova.force_down("compute-1", dry_run=False)
    assert record.skipped == "already forced down" and compute.mutations() == []


def test_disable_gives_the_bridges_reason(nova, compute):
    record = nova.disable("compute-2", "incident 7: host down and fenced", dry_run=False)
    [(name, svc, kwargs)] = compute.mutations()
    assert (name, svc.host) == ("disable_service", "compute-2")
    assert kwargs == {"host": "compute-2", "binary": "nova-compute",
                      "disabled_reason": "incident 7: host down and fenced"}
    assert record.skipped is None and compute.by_host("compute-2").disabled_reason == "incident 7: host down and fenced"


@pytest.mark.parametrize("reason, shown", [("maintenance by bob", "maintenance by bob"), (None, "no reason given")])
def test_disable_never_overwrites_someone_elses_reason(nova, compute, reason, shown):
    compute.by_host("compute-1").status, compute.by_host("compute-1").disabled_reason = "disabled", reason
    record = nova.disable("compute-1", "incident 7", dry_run=False)
    assert record.skipped == f"already disabled ({shown})"
    assert compute.mutations() == [] and compute.by_host("compute-1").disabled_reason == reason


def test_dry_run_reads_the_service_and_calls_nothing_that_changes_it(nova, compute):
    down = nova.force_down("compute-1", dry_run=True)
    disabled = nova.disable("compute-1", "incident 7", dry_run=True)
    assert compute.mutations() == [] and [c[0] for c in compute.calls] == ["services", "services"]
    assert down.dry_run and down.skipped is None and down.request["service_id"] == "uuid-compute-1"
    assert disabled.dry_run and disabled.request["disabled_reason"] == "incident 7"
    assert compute.by_host("compute-1").is_forced_down is False and compute.by_host("compute-1").status == "enabled"


@pytest.mark.parametrize("call", ["force_down", "disable"])
def test_an_unknown_host_is_a_nova_error_and_nothing_is_changed(nova, compute, call):
    args = ("compute-9",) if call == "force_down" else ("compute-9", "incident 7")
    with pytest.raises(NovaError, match="no nova-compute service on host 'compute-9'"):
        getattr(nova, call)(*args, dry_run=False)
    assert compute.mutations() == []


@pytest.mark.parametrize("error", [
    http_error(500), http_error(503), ksa.ConnectFailure("connection refused"),
    ksa.ConnectTimeout("connect timed out"), ksa.RequestTimeout(), TimeoutError("read timed out"),
], ids=["500", "503", "connect-failure", "connect-timeout", "request-timeout", "read-timeout"])
def test_a_transient_error_is_retried_with_growing_backoff_then_succeeds(nova, compute, sleeps, error):
    compute.errors["update_service_forced_down"] = [error, error]
    record = nova.force_down("compute-1", dry_run=False)
    assert [a["attempt"] for a in record.attempts] == [1, 2]
    assert type(error).__name__ in record.attempts[0]["error"]
    assert len(compute.mutations()) == 3 and compute.by_host("compute-1").is_forced_down
    assert sleeps == sorted(sleeps) and len(sleeps) == 2 and sleeps[0] > 0


def test_a_transient_error_that_lasts_gives_up_after_the_attempts_listing_each(nova, compute, sleeps):
    compute.errors["disable_service"] = [http_error(502) for _ in range(10)]
    with pytest.raises(NovaError, match="nova disable compute-1 failed: HttpException: HTTP 502") as raised:
        nova.disable("compute-1", "incident 7", dry_run=False)
    assert [a["attempt"] for a in raised.value.attempts] == [1, 2, 3, 4]
    assert all("HTTP 502" in a["error"] for a in raised.value.attempts)
    assert len(compute.mutations()) == 4 and len(sleeps) == 3
    assert sleeps == sorted(sleeps) and max(sleeps) <= 8  # exponential, capped at backoff_max


@pytest.mark.parametrize("error", [http_error(400, sdk.BadRequestException), http_error(403, sdk.ForbiddenException),
                                   http_error(404, sdk.NotFoundException), http_error(409, sdk.ConflictException)],
                         ids=["400", "403", "404", "409"])
def test_a_refusal_4xx_is_not_retried(nova, compute, sleeps, error):
    compute.errors["update_service_forced_down"] = [error]
    with pytest.raises(NovaError) as raised:
        nova.force_down("compute-1", dry_run=False)
    assert raised.value.attempts == [{"attempt": 1, "error": f"{type(error).__name__}: HTTP {error.status_code}"}]
    assert len(compute.mutations()) == 1 and sleeps == []


def test_a_failing_lookup_is_retried_too_and_then_changes_the_host_once(nova, compute, sleeps):
    compute.errors["services"] = [ksa.ConnectFailure("refused")]
    nova.force_down("compute-1", dry_run=False)
    assert [c[0] for c in compute.calls] == ["services", "services", "update_service_forced_down"]


def test_listing_that_keeps_failing_is_a_nova_error(nova, compute, sleeps):
    compute.errors["services"] = [http_error(500) for _ in range(4)]
    with pytest.raises(NovaError, match="nova list services failed") as raised:
        nova.compute_services()
    assert len(raised.value.attempts) == 4


@pytest.mark.parametrize("error", [ksa.http.Unauthorized(http_status=401), ksa.http.Forbidden(http_status=403)],
                         ids=["401", "403"])
def test_keystone_refusing_the_credentials_is_not_retried(nova, compute, sleeps, error):
    # keystoneauth raises these itself (authenticating, finding the endpoint), not through the sdk
    compute.errors["services"] = [error]
    with pytest.raises(NovaError) as raised:
        nova.force_down("compute-1", dry_run=False)
    assert len(raised.value.attempts) == 1 and sleeps == [] and compute.mutations() == []


def test_keystone_failing_on_its_side_is_retried(nova, compute, sleeps):
    compute.errors["services"] = [ksa.http.ServiceUnavailable(http_status=503)]
    nova.force_down("compute-1", dry_run=False)
    assert [c[0] for c in compute.calls] == ["services", "services", "update_service_forced_down"]


def test_a_pool_of_more_threads_than_ten_keeps_each_connection_alive():
    """keystoneauth's requests session keeps 10 connections per host: with 20 request threads the
    other 10 were closed after each request and opened again for the next."""
    import http.server
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from keystoneauth1.session import _construct_session

    from bridge.nova import keep_alive

    peers: set = set()
    barrier = threading.Barrier(20, timeout=10)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            peers.add(self.client_address)
            barrier.wait()  # all 20 requests in flight at once: 20 connections are needed
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        http_session = _construct_session()  # as keystoneauth builds it
        keep_alive(http_session, 20)
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        with ThreadPoolExecutor(20) as pool:
            for _ in range(3):
                assert all(r.status_code == 200 for r in pool.map(lambda _: http_session.get(url), range(20)))
        assert len(peers) == 20  # opened once each, then reused
    finally:
        server.shutdown()

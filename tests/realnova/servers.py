"""Servers in the lab: boot them on one fake compute, read them back, clean them away.

Used by tests/realnova/test_servers_with_real_nova.py and benchmarks/servers_on_failed_host.py.
Servers boot from the lab's tiny flavor and its one glance stand-in image, without networks.
"""

from __future__ import annotations

import time

from tests.harness.procs import wait_until

TERMINAL = ("ACTIVE", "SHUTOFF", "ERROR")


def compute(lab):
    """openstacksdk's compute proxy at 2.73 (locked_reason, and evacuations keep the old state)."""
    return lab.connection(compute_api_version="2.73").compute


def boot(lab, host: str, name: str, count: int = 1, metadata: dict | None = None, timeout: float = 300) -> list:
    """`count` servers on `host` in one request (names name-1, name-2, ... when count > 1), ACTIVE."""
    nova = compute(lab)
    nova.create_server(name=name, flavor_id=lab.flavor_id, image_id=lab.image_id, networks="none",
                       availability_zone=f"nova:{host}", metadata=metadata or {}, min_count=count, max_count=count)
    prefix = name if count == 1 else f"{name}-"

    def mine():
        return [s for s in nova.servers(details=True, all_projects=True) if s.name == name or
                (count > 1 and s.name.startswith(prefix))]

    wait_until(f"{count} server(s) {name} ACTIVE", lambda: len(found := mine()) == count and
               all(s.status in TERMINAL for s in found), timeout=timeout, interval=0.5)
    servers = mine()
    bad = [(s.name, s.status, s.fault) for s in servers if s.status != "ACTIVE"]
    assert not bad, bad
    return servers


def wait_status(lab, server_id: str, status: str, timeout: float = 60):
    nova = compute(lab)
    wait_until(f"server {server_id} {status}", lambda: nova.get_server(server_id).status == status and
               nova.get_server(server_id).task_state is None, timeout=timeout, interval=0.3)
    return nova.get_server(server_id)


def delete_all(lab, timeout: float = 300) -> None:
    """Every server in the lab gone (reset-state first: an ERROR or locked one deletes too)."""
    nova = compute(lab)
    for s in list(nova.servers(details=True, all_projects=True)):
        if s.is_locked:
            nova.unlock_server(s)
        nova.delete_server(s, force=True)
    wait_until("every lab server deleted", lambda: not list(nova.servers(all_projects=True)), timeout=timeout,
               interval=0.5)


def evacuation_posts(proxy) -> dict[str, int]:
    """Evacuations forwarded to Nova, per server id (the fault proxy's record)."""
    out: dict[str, int] = {}
    with proxy.lock:
        for method, path, body in proxy.forwarded:
            if method == "POST" and path.endswith("/action") and b'"evacuate"' in body:
                server_id = path.split("/servers/")[1].split("/")[0]
                out[server_id] = out.get(server_id, 0) + 1
    return out


def action_posts(proxy, action: bytes) -> list[str]:
    with proxy.lock:
        return [p.split("/servers/")[1].split("/")[0] for m, p, b in proxy.forwarded
                if m == "POST" and p.endswith("/action") and b'"' + action + b'"' in b]


def settle_time(lab, ids: set[str], started: float, query: dict, done=None, timeout: float = 600,
                interval: float = 0.25) -> float:
    """Seconds from `started` (time.monotonic) until Nova lists every id under `query` (openstacksdk's
    names: status=, compute_host=) and, if given, done(server) holds for each. Without `done` the
    listing is the plain one (ids only): nova-api, which the bridge being measured shares, builds a
    detailed view per server, ten times the work."""
    nova = compute(lab)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {s.id: s for s in nova.servers(details=done is not None, all_projects=True, **query) if s.id in ids}
        if len(seen) == len(ids) and (done is None or all(done(s) for s in seen.values())):
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"servers not settled within {timeout}s")

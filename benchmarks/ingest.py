#!/usr/bin/env python3
"""Ingest storm benchmark: the bridge served as README does (`hostdown-bridge serve`, gunicorn,
default workers, engine on, the embedded default config and its gates; --config plain: one
rule, no gate), against a bare Flask+gunicorn app that parses the JSON and answers
202 (the ceiling), in the same run. Every request carries a distinct Alertmanager alert.

Measured: closed-loop throughput at concurrency 16 and 64, open-loop latency at 500, 1,000 and
2,000 requests/s (from each request's scheduled send time), alerts spread over 1,000 hosts and
all for one host; grouped bodies of 100 alerts (alerts/s); a 10,000-alert storm, until every
alert is accepted and until the engine has taken every one in. Afterwards the database is asked
for every alert answered 202: `lost` counts those it does not hold. The client (asyncio, raw
kept-alive connections, prebuilt requests: about half of aiohttp's CPU per request) shares the
machine's cores with the servers; its CPU time is reported, and the server's CPU per alert.
With wrk installed (Debian: apt-get install wrk), the closed loop at concurrency 64 is also run
from wrk, which takes less still (benchmarks/ingest_wrk.lua records every alert answered 202,
so that those too are counted only if found stored).

    .venv/bin/python benchmarks/ingest.py [--seconds 4] [--storm 10000] [--config default|plain]
                                          [--database-url URL | --postgres]

The last line is
    ingest durable_rps=<x> ceiling_rps=<x> ratio=<x> p99_ms_at_1000=<x> lost=<n>
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.config import DEFAULTS  # noqa: E402
from tests.harness.bridge_process import (  # noqa: E402
    ADMIN_TOKEN, WEBHOOK_TOKEN, BridgeProcess, base_config, free_port, wait_until)

DEFAULT_CONFIG = ROOT / "bridge" / "default-config.yaml"

HOSTS = 1000
CEILING_APP = textwrap.dedent("""
    from flask import Flask, request
    app = Flask("ceiling")

    @app.post("/v1/alerts/<source>")
    def receive(source):
        body = request.get_json()
        return {"accepted": len(body["alerts"])}, 202
""")


def alert_body(run: str, n: int, group: int, one_host: bool) -> bytes:
    """Alertmanager webhook (version 4) with `group` distinct alerts, numbered from n."""
    alerts = []
    for k in range(n, n + group):
        host = "compute-0000" if one_host else f"compute-{k % HOSTS:04d}"
        alerts.append({
            "status": "firing", "fingerprint": f"{run}-{k}", "startsAt": "2026-11-24T19:17:07Z",
            "labels": {"alertname": "HostDown", "severity": "critical", "openstack_host": host,
                       "instance": f"{host}:9100", "job": "node"},
            "annotations": {"summary": f"{host} unreachable"},
        })
    return json.dumps({"version": "4", "status": "firing", "receiver": "bridge", "alerts": alerts}).encode()


@dataclass
class Phase:
    target: str
    name: str
    seconds: float = 0
    sent: int = 0
    ok: int = 0
    other: dict = field(default_factory=dict)
    latencies: list = field(default_factory=list)
    fingerprints: list = field(default_factory=list)  # of alerts answered 202
    alerts_per_request: int = 1
    client_cpu: float = 0
    lost: int | None = None  # answered 202, not found stored (bridge phases)
    percentiles: dict = field(default_factory=dict)  # ms by quantile, when the client reports only those

    @property
    def rate(self) -> float:
        return self.ok * self.alerts_per_request / self.seconds if self.seconds else 0

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return self.percentiles.get(q, float("nan"))
        values = sorted(self.latencies)
        return values[min(len(values) - 1, int(q * len(values)))] * 1000


_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.I)


class _Connection(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection: one request at a time, its answer's status read."""

    def __init__(self, idle: set):
        self.idle, self.transport, self.buffer, self.waiter = idle, None, bytearray(), None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end])
        found = _LENGTH.search(head)
        if len(self.buffer) < end + 4 + (int(found.group(1)) if found else 0):
            return
        self.buffer.clear()
        closes = b"\r\nconnection: close" in head.lower()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((int(head[9:12]), closes))

    def connection_lost(self, exc) -> None:
        self.transport = None
        self.idle.discard(self)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(("closed", True))


class Client:
    """The load generator: raw asyncio connections (kept alive, at most `connections`) sending
    prebuilt requests, about half of aiohttp's CPU per request. A request waiting for a free
    connection counts its wait in its latency."""

    def __init__(self, url: str, connections: int):
        self.host, self.port = url.removeprefix("http://").split(":")
        self.counter = itertools.count()
        self.idle: set[_Connection] = set()
        self.slots = asyncio.Semaphore(connections)

    def request(self, body: bytes) -> bytes:
        return (f"POST /v1/alerts/alertmanager HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Authorization: Bearer {WEBHOOK_TOKEN}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def exchange(self, data: bytes) -> int | str:
        async with self.slots:
            conn = self.idle.pop() if self.idle else None
            if conn is None:
                try:
                    _, conn = await asyncio.get_running_loop().create_connection(
                        lambda: _Connection(self.idle), self.host, int(self.port))
                except OSError as exc:
                    return type(exc).__name__
            conn.waiter = asyncio.get_running_loop().create_future()
            conn.transport.write(data)
            try:
                status, closes = await asyncio.wait_for(conn.waiter, 60)
            except asyncio.TimeoutError:
                status, closes = "TimeoutError", True
            if closes:
                if conn.transport is not None:
                    conn.transport.close()
            else:
                self.idle.add(conn)
            return status

    async def post(self, phase: Phase, body: bytes, first: str, scheduled: float | None = None) -> None:
        start = scheduled if scheduled is not None else time.perf_counter()
        phase.sent += 1
        status = await self.exchange(self.request(body))
        if status == 202:
            phase.ok += 1
            phase.latencies.append(time.perf_counter() - start)
            phase.fingerprints.append(first)
        else:
            phase.other[status] = phase.other.get(status, 0) + 1

    async def close(self) -> None:
        for conn in list(self.idle):
            conn.transport.close()
        await asyncio.sleep(0)

    async def closed(self, phase: Phase, concurrency: int, seconds: float, run: str, one_host: bool,
                     group: int = 1, total: int | None = None) -> Phase:
        """`concurrency` senders, each posting as soon as its last answer came, for `seconds` or `total` bodies."""
        phase.alerts_per_request = group
        cpu, start = time.process_time(), time.perf_counter()
        deadline = start + seconds
        left = itertools.count()

        async def sender():
            while time.perf_counter() < deadline if total is None else next(left) < total:
                n = next(self.counter) * group
                await self.post(phase, alert_body(run, n, group, one_host), f"{run}-{n}")

        await asyncio.gather(*(sender() for _ in range(concurrency)))
        phase.seconds, phase.client_cpu = time.perf_counter() - start, time.process_time() - cpu
        return phase

    async def open(self, phase: Phase, rate: float, seconds: float, run: str, one_host: bool) -> Phase:
        """Requests sent on a fixed schedule whatever the answers; latency counts from the schedule."""
        cpu, start = time.process_time(), time.perf_counter()
        tasks = []
        for i in range(int(rate * seconds)):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            n = next(self.counter)
            tasks.append(asyncio.create_task(
                self.post(phase, alert_body(run, n, 1, one_host), f"{run}-{n}", scheduled)))
        await asyncio.gather(*tasks)
        phase.seconds, phase.client_cpu = time.perf_counter() - start, time.process_time() - cpu
        return phase


WRK = shutil.which("wrk")
WRK_SCRIPT = ROOT / "benchmarks" / "ingest_wrk.lua"
_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk_closed(url: str, phase: Phase, concurrency: int, seconds: float, run: str, one_host: bool,
               workdir: Path) -> Phase:
    """The closed loop from wrk: `concurrency` connections, each posting as soon as answered."""
    out = workdir / "wrk"
    out.mkdir(exist_ok=True)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(["wrk", "-t2", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "60s", "--latency",
                           "-s", str(WRK_SCRIPT), url, "--", str(out), run, WEBHOOK_TOKEN, str(HOSTS),
                           "1" if one_host else "0"], capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    phase.client_cpu = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    found = re.search(r"(\d+) requests in ([\d.]+)(ms|s)\b", done)
    phase.sent, phase.seconds = int(found.group(1)), float(found.group(2)) * _WRK_UNITS[found.group(3)] / 1000
    phase.fingerprints = [fp for f in sorted(out.glob(f"{run}-*.txt")) for fp in f.read_text().split()]
    phase.ok = len(phase.fingerprints)
    if phase.sent > phase.ok:
        phase.other["not 202"] = phase.sent - phase.ok
    for q, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", done, re.M):
        phase.percentiles[int(q) / 100] = float(value) * _WRK_UNITS[unit]
    return phase


class Ceiling:
    """The bare app under gunicorn, with the bridge's worker and thread counts and keep-alive."""

    def __init__(self, workdir: Path, workers: int, threads: int, keepalive: int = DEFAULTS["server"]["keepalive"]):
        (workdir / "ceiling_app.py").write_text(CEILING_APP)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--chdir", str(workdir), "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
             "--keep-alive", str(keepalive),
             "ceiling_app:app"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

        def up():
            try:
                import socket
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False
        wait_until("ceiling app", up, 30)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(20)


def stored(db: sa.Engine, prefix: str) -> tuple[set[str], int]:
    """Fingerprints stored under this run prefix, and how many of them are not yet taken in."""
    with db.connect() as conn:
        rows = conn.execute(sa.text("SELECT fingerprint, processed_at FROM signals WHERE fingerprint LIKE :p"),
                            {"p": prefix + "-%"}).all()
    return {r.fingerprint for r in rows}, sum(r.processed_at is None for r in rows)


def unprocessed(db: sa.Engine) -> int:
    with db.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM signals WHERE processed_at IS NULL")).scalar()


async def settle(db: sa.Engine, timeout: float = 120) -> float:
    """Seconds until the engine has taken in every stored signal. Waited for in a thread: the
    client's event loop keeps running, and sees the server close its idle connections (a loop
    blocked here would send the next phase's first requests on connections already closed)."""
    start = time.perf_counter()
    await asyncio.to_thread(wait_until, "the engine to take in every signal", lambda: unprocessed(db) == 0,
                            timeout, 0.05)
    return time.perf_counter() - start


def server_cpu(pid: int) -> float:
    """CPU seconds of a process group (gunicorn master and workers) so far."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pid:  # pgrp
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def bench_bridge(url: str, db: sa.Engine, args, phases: list[Phase], workdir: Path) -> dict:
    client = Client(url, 512)
    lost_of = {}
    run_ids = itertools.count()

    async def measure(phase_coro, phase: Phase):
        await phase_coro
        phases.append(phase)
        await settle(db)
        return phase

    try:
        await client.closed(Phase("bridge", "warm-up"), 8, 1.0, "warm", False)
        await settle(db)
        for one_host in (False, True):
            where = "1 host" if one_host else f"{HOSTS} hosts"
            for concurrency in (16, 64):
                run = f"r{next(run_ids)}"
                phase = Phase("bridge", f"closed c={concurrency}, {where}")
                await measure(client.closed(phase, concurrency, args.seconds, run, one_host), phase)
                lost_of[run] = phase
            if WRK:
                run = f"r{next(run_ids)}"
                phase = Phase("bridge", f"closed c=64, {where} (wrk)")
                await measure(asyncio.to_thread(wrk_closed, url, phase, 64, args.seconds, run, one_host, workdir),
                              phase)
                lost_of[run] = phase
            for rate in (500, 1000, 2000):
                run = f"r{next(run_ids)}"
                phase = Phase("bridge", f"open {rate}/s, {where}")
                await measure(client.open(phase, rate, args.seconds, run, one_host), phase)
                lost_of[run] = phase
        run = f"r{next(run_ids)}"
        phase = Phase("bridge", f"closed c=16, bodies of 100 alerts, {HOSTS} hosts")
        await measure(client.closed(phase, 16, args.seconds, run, False, group=100), phase)
        lost_of[run] = phase
        # the storm: every alert accepted, then every alert taken in by the engine
        run = f"r{next(run_ids)}"
        storm = Phase("bridge", f"storm of {args.storm} alerts, c=64, {HOSTS} hosts")
        start = time.perf_counter()
        await client.closed(storm, 64, 3600, run, False, total=args.storm)
        accepted = time.perf_counter() - start
        taken_in = accepted + await settle(db, timeout=600)
        phases.append(storm)
        lost_of[run] = storm
    finally:
        await client.close()
    lost = 0
    for run, phase in lost_of.items():
        found, _ = stored(db, run)
        # a grouped body stores alerts n..n+99: its first one stands for it (all or none commit together)
        phase.lost = sum(fp not in found for fp in phase.fingerprints)
        lost += phase.lost
    return {"lost": lost, "storm_accepted": accepted, "storm_taken_in": taken_in}


async def bench_ceiling(url: str, args, phases: list[Phase], workdir: Path) -> None:
    client = Client(url, 512)
    try:
        await client.closed(Phase("ceiling", "warm-up"), 8, 1.0, "warm", False)
        for concurrency in (16, 64):
            phases.append(await client.closed(Phase("ceiling", f"closed c={concurrency}"), concurrency,
                                              args.seconds, "c", False))
        if WRK:
            phases.append(await asyncio.to_thread(wrk_closed, url, Phase("ceiling", "closed c=64 (wrk)"), 64,
                                                  args.seconds, "c", False, workdir))
        for rate in (500, 1000, 2000):
            phases.append(await client.open(Phase("ceiling", f"open {rate}/s"), rate, args.seconds, "c", False))
    finally:
        await client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4, help="length of each measured phase")
    parser.add_argument("--storm", type=int, default=10000, help="alerts in the storm")
    parser.add_argument("--database-url", help="PostgreSQL instead of SQLite (an empty database)")
    parser.add_argument("--postgres", action="store_true",
                        help="on a private PostgreSQL cluster started as the tests do (note: its fsync is off)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (README default: 2)")
    parser.add_argument("--config", choices=("default", "plain"), default="default",
                        help="default: the embedded default config, as `make run` serves it (gates on, "
                             "webhook rate limit 5000/s); plain: one rule, no gate, no rate limit")
    args = parser.parse_args()
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        workdir = Path(tmp)
        if args.postgres:
            from tests.harness.postgres import PostgresCluster
            top = workdir / "pg-top"
            top.mkdir()
            os.chmod(tmp, 0o755)
            top.chmod(0o755)
            cluster = PostgresCluster(top / "pg").start()
            cluster.execute("CREATE DATABASE bench")
            args.database_url = cluster.url("bench")
        try:
            return run(args, workdir, phases)
        finally:
            if args.postgres:
                cluster.stop()


def run(args, workdir: Path, phases: list[Phase]) -> int:
    """Both servers measured in turn; the table and the summary line printed."""
    database = {"url": args.database_url or f"sqlite:///{workdir / 'bridge.sqlite'}"}
    env = None
    if args.config == "default":  # `make run`: the embedded default, its gates and its rate limit
        config = {**yaml.safe_load(DEFAULT_CONFIG.read_text()), "database": database}
        env = {"HOSTDOWN_BRIDGE_WEBHOOK_TOKEN": WEBHOOK_TOKEN, "HOSTDOWN_BRIDGE_ADMIN_TOKEN": ADMIN_TOKEN}
    else:  # one rule, no gate, no rate limit in the way
        config = base_config(workdir, database=database, server={"rate_limit": {
            "enabled": True, "webhook": "1000000/second", "admin": "1000/second"}})
        config["engine"] = {}  # README's defaults
    bridge = BridgeProcess(workdir, config, env=env, workers=args.workers).start()
    db = sa.create_engine(config["database"]["url"])
    try:
        cpu, load = server_cpu(bridge.process.proc.pid), os.getloadavg()[0]
        outcome = asyncio.run(bench_bridge(bridge.url, db, args, phases, workdir))
        bridge_cpu = server_cpu(bridge.process.proc.pid) - cpu
    finally:
        bridge.stop()
        db.dispose()
    ceiling = Ceiling(workdir, args.workers, DEFAULTS["server"]["threads"])
    try:
        asyncio.run(bench_ceiling(ceiling.url, args, phases, workdir))
    finally:
        ceiling.stop()

    print(f"\n{'target':<8} {'phase':<44} {'ok':>6} {'other':>10} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'client cpu':>10} {'lost':>5}")
    for p in phases:
        other = ",".join(f"{k}:{v}" for k, v in p.other.items()) or "-"
        unit = " alerts" if p.alerts_per_request > 1 else ""
        print(f"{p.target:<8} {p.name:<44} {p.ok:>6} {other:>10} {p.rate:>8.0f} {p.quantile(0.5):>8.1f} "
              f"{p.quantile(0.99):>8.1f} {p.client_cpu / p.seconds:>9.0%} {'-' if p.lost is None else p.lost:>5}{unit}")
    accepted = sum(p.ok * p.alerts_per_request for p in phases if p.target == "bridge")
    print(f"bridge config: {'the embedded default' if args.config == 'default' else 'plain (one rule, no gate)'}, "
          f"{'PostgreSQL' if args.database_url else 'SQLite'}, {args.workers} workers")
    print(f"load average (1 min) {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end: wall-clock "
          "figures are the machine's, CPU per alert the bridge's own")
    print(f"storm of {args.storm} alerts: accepted in {outcome['storm_accepted']:.1f} s, "
          f"taken in by the engine after {outcome['storm_taken_in']:.1f} s; bridge processes used "
          f"{bridge_cpu:.0f} CPU s in all, {1000 * bridge_cpu / accepted:.2f} ms per alert accepted")

    def best(target: str, prefix: str) -> float:
        return max(p.rate for p in phases if p.target == target and p.name.startswith(prefix)
                   and p.alerts_per_request == 1)

    durable = max((p.ok - p.lost) / p.seconds for p in phases
                  if p.target == "bridge" and p.name.startswith("closed") and p.alerts_per_request == 1)
    ceiling_rps = best("ceiling", "closed")
    p99 = max(p.quantile(0.99) for p in phases if p.target == "bridge" and p.name.startswith("open 1000/s"))
    print(f"ingest durable_rps={durable:.0f} ceiling_rps={ceiling_rps:.0f} ratio={durable / ceiling_rps:.2f} "
          f"p99_ms_at_1000={p99:.1f} lost={outcome['lost']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What every harness needs to run real processes for tests: ports, waiting, commands,
processes started and stopped by their PID, their logs.

Standard library only: the real Nova lab's command line uses it too. A process is always
started in a session of its own, so that stopping it signals its whole process group
(gunicorn's workers, postgres's backends, beam.smp) and nothing else.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable


class TimedOut(AssertionError):
    pass


class CommandFailed(AssertionError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(what: str, predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.05):
    """predicate()'s first true value; TimedOut after `timeout` seconds. predicate may raise to give up."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimedOut(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http_status(url: str, timeout: float = 2) -> int | None:
    """The status a GET of url answers, None if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def run(*argv, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """A command that must succeed; its output goes into the failure message."""
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **kwargs)
    if done.returncode != 0:
        raise CommandFailed(f"{' '.join(map(str, argv))} exited {done.returncode}:\n"
                            f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


def tail(path: Path | str, chars: int = 4000) -> str:
    """The end of a log file, '' if there is none."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - chars))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


# ---- processes by PID (/proc) ----------------------------------------------------------------

def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time) of a pid, None if it does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = data.rsplit(")", 1)[1].split()
    return fields[0], int(fields[2]), int(fields[19])


def _live_by_group() -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat and stat[0] != "Z":
                groups.setdefault(stat[1], []).append(int(entry))
    return groups


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) pids in process group pgid."""
    return _live_by_group().get(pgid, [])


def rss_mb(pids: list[int]) -> float:
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total * page / 2 ** 20


def stop_groups(pgids: list[int], sig: int = signal.SIGTERM, timeout: float = 30,
                reap: Callable[[], Any] = lambda: None) -> list[int]:
    """Signal these process groups together and wait until none of them lives; SIGKILL what
    is left after `timeout`. reap() is called while waiting (Popen.poll, so that our own
    children are no zombies). Returns the groups that had to be killed."""
    killed: list[int] = []
    for each, wait in ((sig, timeout), (signal.SIGKILL, 10)):
        for pgid in pgids:
            try:
                os.killpg(pgid, each)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while True:
            groups = _live_by_group()
            live = [pgid for pgid in pgids if pgid in groups]
            reap()
            if not live or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if not live:
            break
        pgids = killed = live
    return killed


class Process:
    """One process we start, in its own session, its output in a log file."""

    def __init__(self, name: str, argv: list, log_path: Path, env: dict | None = None,
                 cwd: Path | str | None = None, user: str | None = None):
        self.name, self.argv, self.log_path, self.cwd, self.user = name, [str(a) for a in argv], log_path, cwd, user
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Process":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env, cwd=self.cwd, start_new_session=True,
                                         user=self.user, group=self.user)
        return self

    def check(self) -> None:
        """Fails, with its log's end, if the process has exited."""
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")

    def log(self, chars: int = 4000) -> str:
        return tail(self.log_path, chars)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """Signal the process group, wait for all of it, SIGKILL if it lingers."""
        if self.proc is None:
            return
        # a reaped leader's pid may be reused, unless members of its group still hold it
        if self.proc.poll() is not None and not group_members(self.proc.pid):
            return
        stop_groups([self.proc.pid], sig, timeout, reap=self.proc.poll)

    def wait_http(self, url: str, timeout: float = 60) -> None:
        """Until url answers 200; fails at once if the process exits."""
        def answers():
            self.check()
            return http_status(url, timeout=1) == 200

        wait_until(f"{self.name} at {url}", answers, timeout, interval=0.1)


class Peer:
    """A server tests start (a simulator, an API) in one Process: start() it, or use it as a
    context manager; stop() stops its whole process group."""

    process: Process | None = None

    def start(self) -> "Peer":
        raise NotImplementedError

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

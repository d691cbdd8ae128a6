"""The shared process harness: a process group is stopped whole, and stubborn ones are killed."""

from __future__ import annotations

import signal

import pytest

from tests.harness.procs import CommandFailed, Process, TimedOut, group_members, run, tail, wait_until

# a parent that forks a child; both in the group the harness made
FAMILY = "sleep 600 & wait"


def start(tmp_path, script: str) -> Process:
    process = Process("family", ["sh", "-c", script], tmp_path / "family.log").start()
    wait_until("the child to start", lambda: len(group_members(process.proc.pid)) == 2, timeout=10)
    return process


def test_stop_ends_the_process_and_what_it_forked(tmp_path):
    process = start(tmp_path, FAMILY)
    process.stop(timeout=10)
    assert group_members(process.proc.pid) == [] and process.proc.returncode == -signal.SIGTERM


def test_a_group_that_ignores_the_signal_is_killed_after_the_timeout(tmp_path):
    process = start(tmp_path, "trap '' TERM; sleep 600 & wait; wait")
    process.stop(timeout=0.5)
    assert group_members(process.proc.pid) == [] and process.proc.returncode == -signal.SIGKILL


def test_check_fails_with_the_log_once_the_process_exited(tmp_path):
    process = Process("short", ["sh", "-c", "echo bad config; exit 3"], tmp_path / "short.log").start()
    process.proc.wait(10)
    with pytest.raises(AssertionError, match="short exited with 3:\nbad config"):
        process.check()
    process.stop()  # nothing left to stop: returns at once


def test_run_names_the_command_and_its_output_when_it_fails():
    with pytest.raises(CommandFailed, match="sh -c echo oops >&2; exit 2 exited 2:\n\noops"):
        run("sh", "-c", "echo oops >&2; exit 2")
    assert run("echo", "fine").stdout == "fine\n"


def test_wait_until_returns_the_first_true_value_or_times_out():
    values = iter([0, None, "ready"])
    assert wait_until("a value", lambda: next(values), timeout=5, interval=0) == "ready"
    with pytest.raises(TimedOut, match="timed out after 0.01s waiting for nothing"):
        wait_until("nothing", lambda: False, timeout=0.01)


def test_tail_gives_the_end_of_a_log_and_nothing_for_a_missing_one(tmp_path):
    (tmp_path / "log").write_text("x" * 10 + "the end")
    assert tail(tmp_path / "log", chars=7) == "the end" and tail(tmp_path / "missing") == ""

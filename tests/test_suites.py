"""The suite markers: plain pytest stays on the laptop, `make test` must run every suite."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from tests.suites import SUITES

ROOT = Path(__file__).resolve().parents[1]

pytest_plugins = ["pytester"]

TESTS = """
import pytest

def test_plain():
    pass

@pytest.mark.process
def test_process():
    pass

@pytest.mark.realnova
def test_realnova():
    pass
"""


@pytest.fixture
def run(pytester):
    pytester.makepyfile(test_sample=TESTS)
    pytester.makeini("[pytest]\nmarkers =\n" + "".join(f"    {m}: x\n" for m in ("unit", *SUITES)))

    def run(*args):
        return pytester.runpytest("-p", "tests.suites", "--strict-markers", *args)

    return run


def test_every_test_without_a_suite_marker_is_a_unit_test(run):
    result = run("-m", "unit")
    result.assert_outcomes(passed=1, deselected=2)


def test_required_suites_that_all_select_tests_run(run):
    result = run("-m", "unit or process or realnova", "--require-suites", "unit,process,realnova")
    result.assert_outcomes(passed=3)


def test_a_required_suite_that_selects_nothing_fails_the_run(run):
    result = run("--require-suites", "unit zabbix")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "suites that selected no test: zabbix" in result.stderr.str()


def test_a_deselected_test_fails_a_run_with_required_suites(run):
    result = run("-m", "unit or process", "--require-suites", "unit process")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "1 tests deselected, e.g. test_sample.py::test_realnova" in result.stderr.str()


def test_an_unknown_suite_name_fails_the_run(run):
    result = run("--require-suites", "unit,unti")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown suites: unti" in result.stderr.str()


def test_make_test_names_every_suite_and_every_marker_is_a_suite():
    makefile = (ROOT / "Makefile").read_text()
    named = re.search(r"^SUITES := (.*)$", makefile, re.M).group(1).split()
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert sorted(named) == sorted(m.split(":")[0] for m in markers) == sorted(("unit", *SUITES))
    assert '--require-suites "$(SUITES)"' in makefile


def test_plain_pytest_runs_unit_and_process_and_deselects_the_suites_that_need_root_or_peers(run):
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    result = run(*shlex.split(addopts))
    result.assert_outcomes(passed=2, deselected=1)

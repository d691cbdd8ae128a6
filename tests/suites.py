"""Which suites a run takes, chosen by marker.

Every test without a suite marker is a `unit` test. Plain `pytest` deselects the suites that
need root or peers (addopts in pyproject.toml). `make test` names every suite, with -m and with
--require-suites; the latter fails the run if one of them selected no test or if any test was
deselected, so CI cannot silently run less than everything.
"""

from __future__ import annotations

import pytest

# the markers that are suites; `unit` is given to every test with none of them
SUITES = ("process", "postgres", "monitoring", "zabbix", "realnova", "bmc", "chart")
_DESELECTED = pytest.StashKey[list]()


def pytest_addoption(parser):
    parser.addoption("--require-suites", metavar="SUITE,...", default="",
                     help="fail the run if one of these suites selects no test, or if any test is deselected")


def pytest_configure(config):
    config.stash[_DESELECTED] = []


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items):
    for item in items:
        if not any(item.get_closest_marker(suite) for suite in SUITES):
            item.add_marker(pytest.mark.unit)


def pytest_deselected(items):
    if items:
        items[0].config.stash[_DESELECTED].extend(items)


def problems(required: list[str], selected, deselected) -> list[str]:
    """What makes a run that must take the `required` suites fall short."""
    unknown = sorted(set(required) - {"unit", *SUITES})
    empty = [s for s in required if s not in unknown and not any(i.get_closest_marker(s) for i in selected)]
    return ([f"unknown suites: {', '.join(unknown)}"] if unknown else []) + \
           ([f"suites that selected no test: {', '.join(empty)}"] if empty else []) + \
           ([f"{len(deselected)} tests deselected, e.g. {deselected[0].nodeid}"] if deselected else [])


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_finish(session):
    required = session.config.getoption("require_suites").replace(",", " ").split()
    found = problems(required, session.items, session.config.stash[_DESELECTED]) if required else []
    if found:
        raise pytest.UsageError("--require-suites: " + "; ".join(found))

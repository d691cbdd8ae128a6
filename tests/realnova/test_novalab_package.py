"""The lab's code without a running lab: the parts nova's venv loads stay self-contained,
and the command line answers for a lab that is not there."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.realnova.novalab import shims
from tests.realnova.novalab.cli import main
from tests.realnova.novalab.lab import NovaLab

PACKAGE = Path(shims.__file__).parent


@pytest.mark.parametrize("name", ["shims.py", "sqlite_hook.py"])
def test_what_runs_in_the_nova_venv_imports_only_the_standard_library_at_load(name):
    tree = ast.parse((PACKAGE / name).read_text())
    top = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    top |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert top and top <= set(sys.stdlib_module_names)
    # and it loads on its own, without this repository on the path (as nova's venv has it)
    done = subprocess.run([sys.executable, "-I", "-c", f"import runpy; runpy.run_path({str(PACKAGE / name)!r})"],
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr


def test_the_entry_points_nova_is_given_exist_in_the_shims(tmp_path):
    lab = NovaLab(tmp_path)
    argvs = [argv for argv, _, _ in lab.supervisor.services().values()]
    entries = [arg.split(":")[1].rstrip("()") for argv in argvs for arg in argv if arg.startswith("novalab_shims:")]
    assert sorted(entries) == ["nova_api_app", "placement_app"]
    assert all(callable(getattr(shims, entry)) for entry in [*entries, "noauth_filter_factory", "serve_stubs"])


def test_status_of_a_lab_that_is_not_there_lists_every_daemon_dead_and_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NOVALAB_DIR", str(tmp_path))
    assert main(["status"]) == 1
    rows = capsys.readouterr().out.splitlines()
    names = [row.split()[0] for row in rows[1:-1]]
    assert names == ["epmd", "rabbitmq", "stubs", "placement", "nova-api", "nova-conductor", "nova-scheduler",
                     "compute-1", "compute-2"]
    assert all(row.split()[1] == "dead" for row in rows[1:-1])


def test_host_commands_refuse_an_unknown_host_or_a_lab_that_is_not_running(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NOVALAB_DIR", str(tmp_path))
    assert main(["reset-host", "compute-9"]) == 1
    assert "unknown host compute-9" in capsys.readouterr().err
    assert main(["reset-host", "compute-1"]) == 1
    assert "the lab is not running" in capsys.readouterr().err

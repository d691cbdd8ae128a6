"""pyproject.toml tells the truth: every import is a declared dependency, every data file named exists."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    return _canonical(re.match(r"[A-Za-z0-9._-]+", spec).group())


def imported_modules(package: Path) -> set[str]:
    """Top-level names of every module imported anywhere in the package, relative imports left out."""
    names = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_of_the_bridge_is_a_declared_dependency():
    declared = {_requirement_name(spec) for spec in PROJECT["project"]["dependencies"]}
    third_party = imported_modules(ROOT / "bridge") - set(sys.stdlib_module_names) - {"bridge", "__future__"}
    distributions = packages_distributions()
    undeclared = {module: distributions.get(module) for module in third_party
                  if not declared & {_canonical(d) for d in distributions.get(module, [])}}
    assert undeclared == {}


def test_every_package_data_pattern_names_files_that_exist():
    package_data = PROJECT["tool"]["setuptools"]["package-data"]
    empty = [f"{package}/{pattern}" for package, patterns in package_data.items() for pattern in patterns
             if not list((ROOT / package.replace(".", "/")).glob(pattern))]
    assert empty == []


def test_the_packaging_checks_see_what_they_check():
    # guards the two tests above against passing on nothing
    assert {"flask", "sqlalchemy", "openstack", "click", "jinja2"} <= imported_modules(ROOT / "bridge")
    assert PROJECT["tool"]["setuptools"]["package-data"]["bridge"]

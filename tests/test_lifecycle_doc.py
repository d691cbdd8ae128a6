"""README's state diagram and incidents.TRANSITIONS are the same table."""

import re
from pathlib import Path

from bridge import incidents as sm

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_diagram_is_the_transition_table():
    block = README.read_text().split("```mermaid", 1)[1].split("```", 1)[0]
    drawn = {(a, b) for a, b in re.findall(r"^\s*(\w+) --> (\w+)", block, re.M) if "[*]" not in (a, b)}
    table = {(a, b) for a, targets in sm.TRANSITIONS.items() for b in targets}
    assert drawn == table
    assert set(re.findall(r"\[\*\] --> (\w+)", block)) == {sm.SUSPECTED}
    assert set(re.findall(r"^\s*(\w+) --> \[\*\]", block, re.M)) == set(sm.TERMINAL)

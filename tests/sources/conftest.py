import pytest

from tests.conftest import InProcessBridge
from tests.sources.shipped import default_rules


@pytest.fixture
def shipped_bridge(tmp_path):
    """An in-process bridge (dry-run, no cloud) with the rules of bridge/default-config.yaml."""
    return InProcessBridge(tmp_path, rules=default_rules())

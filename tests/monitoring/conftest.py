import pytest

from tests.harness.bridge_process import base_config
from tests.monitoring.harness import Stack, Workdir
from tests.sources.shipped import default_rules


@pytest.fixture
def bridge_server(bridge_process, tmp_path):
    """The real bridge process with the shipped default rules: dry-run, no cloud, manual fencing."""
    return bridge_process(base_config(tmp_path, rules=default_rules()))


@pytest.fixture
def stack():
    daemons = Stack()
    yield daemons
    daemons.stop()


@pytest.fixture
def workdir(request):
    made = Workdir(request.node.name[:40])
    yield made
    made.remove()

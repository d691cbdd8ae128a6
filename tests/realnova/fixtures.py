"""pytest fixture for tests that need a real Nova (see the novalab package).

A conftest imports it:  from tests.realnova.fixtures import real_nova
"""
import pytest

from tests.realnova.novalab import NovaLab


@pytest.fixture(scope='session')
def real_nova():
    """A running NovaLab, with every compute host up, enabled, not forced down.

    Reuses a lab that is already running (``python -m tests.realnova.novalab
    up``) and leaves it running.  Otherwise installs, initialises and starts
    one, and stops it at session end.  Holds the lab's lock for the session,
    so a second session on the same NOVALAB_DIR waits instead of resetting
    or stopping the lab under this one.  Never skips: if the lab cannot come
    up, the error (with the failing service's log tail) fails the tests.
    """
    with NovaLab().session() as lab:
        yield lab

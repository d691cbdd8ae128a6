"""novalab: a real OpenStack Nova on 127.0.0.1 for integration tests.

Runs nova-api, nova-conductor, nova-scheduler, two fake nova-compute hosts
(compute-1, compute-2) and Placement from PyPI in a separate venv, with
Debian's RabbitMQ as RPC transport, SQLite databases and a tiny stdlib
glance/neutron stand-in process.  No Keystone: nova-api gets a "noauth" paste
filter that turns the token "user:project" into identity headers (user
"admin" gets the admin role).  Everything lives under $NOVALAB_DIR (default
<repo>/.novabox) and only processes whose PIDs we recorded there are ever
signalled.

CLI (from the repo root; install needs root for apt):

    python -m tests.realnova.novalab up        # install + init + start
    python -m tests.realnova.novalab {install|init|start|stop|status|down}
    python -m tests.realnova.novalab restart-compute compute-1
    python -m tests.realnova.novalab reset-host compute-1   # up + enabled

down = stop + delete state (keeps the venv).  Logs: $NOVALAB_DIR/log.
Library: NovaLab().up(); NovaLab().connection() -> openstack Connection;
pytest: tests.realnova.fixtures.real_nova.  Commands and the fixture take a
lock on the lab dir, so concurrent sessions wait for each other.

One module per job: layout (paths, ports), install (apt + the nova venv),
config (what init writes), supervise (the daemons by PID), nova_api (the API
with the stdlib), lab (NovaLab), cli.  shims.py and sqlite_hook.py run inside
the nova venv: they are copied there and import only the standard library.
"""
from tests.realnova.novalab.lab import NovaLab  # noqa: F401
from tests.realnova.novalab.layout import NovaLabError  # noqa: F401

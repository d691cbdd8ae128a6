"""Install what the lab runs: Debian's RabbitMQ and a venv with the pinned nova."""
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.harness.procs import run
from tests.realnova.novalab.layout import RABBIT_BIN, log

PACKAGES = ['nova==34.0.0', 'openstack-placement==16.0.0',
            'openstacksdk==4.22.0', 'gunicorn==27.0.1']
CONSTRAINTS = Path(__file__).resolve().parents[1] / 'constraints.txt'
POLICY_RC_D = Path('/usr/sbin/policy-rc.d')
INSTALL_TIMEOUT = 1800  # pip builds a venv of ~150 packages


def install(layout):
    """apt rabbitmq-server + the pinned nova venv; skips what exists."""
    t0 = time.monotonic()
    if not (RABBIT_BIN / 'rabbitmq-server').exists():
        _install_rabbitmq()
    marker = layout.venv / '.novalab-packages'
    if not (marker.exists() and marker.read_text() == ' '.join(PACKAGES)):
        log('pip: creating %s with %s' % (layout.venv, ' '.join(PACKAGES)))
        layout.root.mkdir(parents=True, exist_ok=True)
        # the venv module bases a venv made from a venv on the real python
        run(sys.executable, '-m', 'venv', layout.venv)
        cons = ['-c', CONSTRAINTS] if CONSTRAINTS.exists() else []
        run(layout.venv / 'bin' / 'pip', 'install', '-q', *cons, *PACKAGES,
            timeout=INSTALL_TIMEOUT)
        marker.write_text(' '.join(PACKAGES))
    log('install done in %.1fs' % (time.monotonic() - t0))


def _install_rabbitmq():
    log('apt: installing rabbitmq-server (postinst may not start it)')
    # Debian's postinst would start a system-wide broker on 0.0.0.0;
    # policy-rc.d exiting 101 forbids that.  Only add one if none exists.
    made_policy = not POLICY_RC_D.exists()
    if made_policy:
        POLICY_RC_D.write_text('#!/bin/sh\nexit 101\n')
        POLICY_RC_D.chmod(0o755)
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    cmd = ['apt-get', 'install', '-y', '-q', '--no-install-recommends',
           'rabbitmq-server']
    try:
        res = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL,
                             timeout=INSTALL_TIMEOUT)
        if res.returncode:
            # most likely missing/stale package lists: update once, retry
            run('apt-get', 'update', '-q', env=env, timeout=INSTALL_TIMEOUT)
            run(*cmd, env=env, timeout=INSTALL_TIMEOUT)
    finally:
        if made_policy:
            POLICY_RC_D.unlink()

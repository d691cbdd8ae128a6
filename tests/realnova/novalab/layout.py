"""Where the lab lives and what it serves: paths under $NOVALAB_DIR, ports, names."""
import os
import sys
import time
from pathlib import Path

from tests.realnova.novalab.shims import GLANCE_PORT, NEUTRON_PORT

DEFAULT_DIR = Path(__file__).resolve().parents[3] / '.novabox'
RABBIT_BIN = Path('/usr/lib/rabbitmq/bin')

HOSTS = ('compute-1', 'compute-2')
TOKEN = 'admin:admin'
ENDPOINT = 'http://127.0.0.1:8774/v2.1'
PLACEMENT_URL = 'http://127.0.0.1:8778'
# epmd, amqp, erlang distribution, nova-api, placement, glance, neutron
PORTS = (4369, 5672, 25672, 8774, 8778, GLANCE_PORT, NEUTRON_PORT)
FLAVOR_ID = '1'
MICROVERSION = '2.53'  # services addressed by UUID, forced_down in PUT body


class NovaLabError(RuntimeError):
    pass


def log(msg):
    print('[novalab %s] %s' % (time.strftime('%H:%M:%S'), msg),
          file=sys.stderr, flush=True)


class Layout:
    """The lab's directories and files under one root."""

    def __init__(self, root=None):
        self.root = Path(root or os.environ.get('NOVALAB_DIR')
                         or DEFAULT_DIR).resolve()
        self.venv = self.root / 'venv'
        self.python = str(self.venv / 'bin' / 'python')
        self.clouds_yaml = str(self.root / 'clouds.yaml')
        self.etc = self.root / 'etc'
        self.state = self.root / 'state'
        self.logs = self.root / 'log'
        self.run = self.root / 'run'
        self.lib = self.root / 'lib'
        self.rabbit = self.root / 'rabbit'

    @property
    def generated(self):
        """What init makes and down removes (the venv stays)."""
        return (self.state, self.logs, self.run, self.etc, self.lib,
                self.rabbit)

    def site_packages(self):
        return next((self.venv / 'lib').glob('python3*/site-packages'))

"""novalab: a real OpenStack Nova on 127.0.0.1 for integration tests.

Runs nova-api, nova-conductor, nova-scheduler, two fake nova-compute hosts
(compute-1, compute-2) and Placement from PyPI in a separate venv, with
Debian's RabbitMQ as RPC transport, SQLite databases and a tiny stdlib
glance/neutron stand-in process.  No Keystone: nova-api gets a "noauth" paste filter
that turns the token "user:project" into identity headers (user "admin" gets
the admin role).  Everything lives under $NOVALAB_DIR (default <repo>/.novabox)
and only processes whose PIDs we recorded there are ever signalled.

CLI (from the repo root; install needs root for apt):

    python -m tests.realnova.novalab up        # install + init + start
    python -m tests.realnova.novalab {install|init|start|stop|status|down}
    python -m tests.realnova.novalab restart-compute compute-1
    python -m tests.realnova.novalab reset-host compute-1   # up + enabled

down = stop + delete state (keeps the venv).  Logs: $NOVALAB_DIR/log.
Library: NovaLab().up(); NovaLab().connection() -> openstack Connection;
pytest: tests.realnova.fixtures.real_nova.  Commands and the fixture take a
lock on the lab dir, so concurrent sessions wait for each other.

This file only imports the standard library at module level: init copies it
into $NOVALAB_DIR/lib, where the nova venv imports it for the paste filter,
the gunicorn entry points and the glance/neutron stubs.
"""
import argparse
import contextlib
import datetime
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PACKAGES = ['nova==34.0.0', 'openstack-placement==16.0.0',
            'openstacksdk==4.22.0', 'gunicorn==27.0.1']
HERE = Path(__file__).resolve().parent
CONSTRAINTS = HERE / 'constraints.txt'
DEFAULT_DIR = HERE.parent.parent / '.novabox'
RABBIT_BIN = Path('/usr/lib/rabbitmq/bin')
POLICY_RC_D = Path('/usr/sbin/policy-rc.d')

HOSTS = ('compute-1', 'compute-2')
TOKEN = 'admin:admin'
ENDPOINT = 'http://127.0.0.1:8774/v2.1'
PLACEMENT_URL = 'http://127.0.0.1:8778'
GLANCE_PORT, NEUTRON_PORT = 9292, 9696
# epmd, amqp, erlang distribution, nova-api, placement, glance, neutron
PORTS = (4369, 5672, 25672, 8774, 8778, GLANCE_PORT, NEUTRON_PORT)
IMAGE_ID = '6f1c3b9e-2d4a-4e8b-9c7d-0a1b2c3d4e5f'  # served by the glance stub
FLAVOR_ID = '1'
MICROVERSION = '2.53'  # services addressed by UUID, forced_down in PUT body
SQLITE_OPTS = '?timeout=60'  # pysqlite busy timeout, seconds
# nova services get SIGTERM first; computes may need a few seconds
STOP_TIMEOUT = 20
# how long a test session or CLI command waits for another one to finish
# with the lab (see NovaLab.exclusive)
LOCK_TIMEOUT = 1800

# Written into the venv's site-packages with a .pth line importing it, so it
# runs in every venv process (nova-manage, services, gunicorn).  Kept apart
# from this module because it must import nothing heavy before eventlet's
# monkey patching: it only arms a finder that acts once sqlalchemy loads.
SQLITE_HOOK = '''\
"""novalab: make oslo.db's SQLite transactions BEGIN IMMEDIATE (TEST USE ONLY).

oslo.db starts every SQLite transaction with a deferred "BEGIN".  With several
nova processes writing one file, a transaction that read first and then
writes gets "database is locked" at once: SQLite refuses the read->write lock
upgrade instead of waiting, so the busy timeout never applies.  IMMEDIATE
takes the write lock up front and the others wait (?timeout= in the URL).
"""
import importlib.abc
import importlib.util
import sys


def _begin_immediate(conn, cursor, statement, parameters, context, many):
    if conn.dialect.name == 'sqlite' and statement.strip().upper() == 'BEGIN':
        statement = 'BEGIN IMMEDIATE'
    return statement, parameters


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != 'sqlalchemy':
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            load = spec.loader.exec_module

            def exec_module(module):
                load(module)
                from sqlalchemy import event
                from sqlalchemy.engine import Engine
                event.listen(Engine, 'before_cursor_execute',
                             _begin_immediate, retval=True)
            spec.loader.exec_module = exec_module
        return spec


if 'sqlalchemy' not in sys.modules:
    sys.meta_path.insert(0, _Finder())
'''


class NovaLabError(RuntimeError):
    pass


def log(msg):
    print('[novalab %s] %s' % (time.strftime('%H:%M:%S'), msg),
          file=sys.stderr, flush=True)


# ------------------------------------------------------------ process helpers
def _proc_stat(pid):
    """(state, pgrp, starttime) of a pid, or None if it does not exist."""
    try:
        data = Path('/proc/%d/stat' % pid).read_text()
    except (OSError, ValueError):
        return None
    fields = data.rsplit(')', 1)[1].split()
    return fields[0], int(fields[2]), int(fields[19])


def _group_members(pgid):
    """Live (non-zombie) pids in process group pgid."""
    pids = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            st = _proc_stat(int(entry))
            if st and st[1] == pgid and st[0] != 'Z':
                pids.append(int(entry))
    return pids


def _rss_mb(pids):
    page = os.sysconf('SC_PAGE_SIZE')
    total = 0
    for pid in pids:
        try:
            total += int(Path('/proc/%d/statm' % pid).read_text().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total * page / 2 ** 20


def _port_in_use(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(('127.0.0.1', port)) == 0


def _amqp_ready(port=5672):
    """True once RabbitMQ answers an AMQP 0-9-1 header (its listener opens
    last, when the broker is ready)."""
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=2) as s:
            s.sendall(b'AMQP\x00\x00\x09\x01')
            return s.recv(1) == b'\x01'  # frame type 1: Connection.Start
    except OSError:
        return False


def _tail(path, lines=40):
    try:
        text = Path(path).read_text(errors='replace').splitlines()
    except OSError:
        return ''
    return '--- %s (last %d lines)\n%s' % (path, lines,
                                           '\n'.join(text[-lines:]))


class ApiError(NovaLabError):
    def __init__(self, status, text):
        super().__init__('HTTP %s: %s' % (status, text[:500]))
        self.status, self.text = status, text


def api(method, path, body=None, microversion=MICROVERSION, timeout=30):
    """Call nova-api as admin with the stdlib (usable without openstacksdk)."""
    req = urllib.request.Request(
        ENDPOINT + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={'X-Auth-Token': TOKEN, 'Content-Type': 'application/json',
                 'OpenStack-API-Version': 'compute ' + microversion})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data = resp.read()
    except urllib.error.HTTPError as e:
        raise ApiError(e.code, e.read().decode(errors='replace')) from None
    return json.loads(data) if data else None


def _http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError as e:
        return e.code < 500
    except OSError:
        return False


# ---------------------------------------------------------------- the lab
class NovaLab:
    cloud = 'novalab'
    token = TOKEN
    endpoint = ENDPOINT
    image_id = IMAGE_ID
    flavor_id = FLAVOR_ID

    def __init__(self, root=None):
        self.root = Path(root or os.environ.get('NOVALAB_DIR')
                         or DEFAULT_DIR).resolve()
        self.hosts = list(HOSTS)
        self.venv = self.root / 'venv'
        self.python = str(self.venv / 'bin' / 'python')
        self.clouds_yaml = str(self.root / 'clouds.yaml')
        self.etc = self.root / 'etc'
        self.state = self.root / 'state'
        self.logs = self.root / 'log'
        self.run = self.root / 'run'
        self.lib = self.root / 'lib'
        self.rabbit = self.root / 'rabbit'
        self._popens = {}  # children started by this process, to reap them
        self._lock_fd = None

    @contextlib.contextmanager
    def exclusive(self, timeout=LOCK_TIMEOUT):
        """Hold the lab for this process until the block ends.

        Two pytest sessions (or a session and a CLI command) sharing one
        NOVALAB_DIR would reset hosts, re-init or stop the lab under each
        other; the second one waits here instead.  The real_nova fixture
        holds it for the whole session and the CLI for each command.  The
        other methods do not take it (a test may build its own NovaLab).
        """
        if self._lock_fd is not None:
            yield self
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / 'novalab.lock', os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode().strip() or '?'
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise NovaLabError('lab %s still in use by pid %s after '
                                       '%ds' % (self.root, holder, timeout))
                if not waiting:
                    log('lab in use by pid %s: waiting' % holder)
                    waiting = True
                time.sleep(1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, b'%d\n' % os.getpid(), 0)
        self._lock_fd = fd
        try:
            yield self
        finally:
            self._lock_fd = None
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # ---------------------------------------------------------- install
    def install(self):
        """apt rabbitmq-server + the pinned nova venv; skips what exists."""
        t0 = time.monotonic()
        if not (RABBIT_BIN / 'rabbitmq-server').exists():
            self._install_rabbitmq()
        marker = self.venv / '.novalab-packages'
        if not (marker.exists() and marker.read_text() == ' '.join(PACKAGES)):
            log('pip: creating %s with %s' % (self.venv, ' '.join(PACKAGES)))
            self.root.mkdir(parents=True, exist_ok=True)
            # the venv module bases a venv made from a venv on the real python
            self._sh([sys.executable, '-m', 'venv', str(self.venv)])
            cons = ['-c', str(CONSTRAINTS)] if CONSTRAINTS.exists() else []
            self._sh([str(self.venv / 'bin' / 'pip'), 'install', '-q',
                      *cons, *PACKAGES])
            marker.write_text(' '.join(PACKAGES))
        log('install done in %.1fs' % (time.monotonic() - t0))

    def _install_rabbitmq(self):
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
            res = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL)
            if res.returncode:
                # most likely missing/stale package lists: update once, retry
                self._sh(['apt-get', 'update', '-q'], env=env)
                self._sh(cmd, env=env)
        finally:
            if made_policy:
                POLICY_RC_D.unlink()

    @staticmethod
    def _sh(cmd, **kw):
        res = subprocess.run(cmd, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, **kw)
        if res.returncode:
            raise NovaLabError('%s failed (%d):\n%s' % (
                ' '.join(cmd), res.returncode, res.stdout[-4000:]))
        return res.stdout

    # ---------------------------------------------------------- init
    def init(self):
        """Fresh configs and SQLite databases (wipes previous state)."""
        if not (self.venv / 'bin' / 'nova-manage').exists():
            raise NovaLabError('no venv at %s: run install first' % self.venv)
        if self._running_names():
            raise NovaLabError('services are running: stop first')
        t0 = time.monotonic()
        for d in (self.state, self.logs, self.run, self.etc, self.lib,
                  self.rabbit):
            shutil.rmtree(d, ignore_errors=True)
        for d in (self.state / 'lock', self.logs, self.run,
                  self.etc / 'placement', self.lib, self.rabbit / 'mnesia',
                  self.rabbit / 'log'):
            d.mkdir(parents=True)
        self._write_code()
        self._write_configs()
        self._sync_databases()
        log('init done in %.1fs' % (time.monotonic() - t0))

    def _site_packages(self):
        lib = self.venv / 'lib'
        return next(lib.glob('python3*/site-packages'))

    def _write_code(self):
        # this module, self-contained, for the paste filter / wsgi / stubs
        shutil.copyfile(__file__, self.lib / 'novalab.py')
        site = self._site_packages()
        (site / 'novalab_sqlite.py').write_text(SQLITE_HOOK)
        (site / 'novalab_sqlite.pth').write_text('import novalab_sqlite\n')

    def _db(self, name):
        return 'sqlite:///%s/%s.sqlite%s' % (self.state, name, SQLITE_OPTS)

    def _write_configs(self):
        etc = self.etc
        paste = (self.venv / 'etc' / 'nova' / 'api-paste.ini').read_text()
        patched = paste.replace(' authtoken keystonecontext ',
                                ' noauth keystonecontext ')
        if patched == paste:
            raise NovaLabError('api-paste.ini layout changed: no authtoken')
        (etc / 'api-paste.ini').write_text(
            patched + '\n[filter:noauth]\n'
            'paste.filter_factory = novalab:noauth_filter_factory\n')
        (etc / 'nova.conf').write_text(f'''\
[DEFAULT]
host = novalab-controller
my_ip = 127.0.0.1
state_path = {self.state}
log_dir = {self.logs}
transport_url = rabbit://guest:guest@127.0.0.1:5672/
compute_driver = fake.FakeDriverWithoutFakeNodes
# a killed (not forced-down) compute shows "down" ~20s later
report_interval = 5
service_down_time = 20
# no real neutron: do not poll it
heal_instance_info_cache_interval = -1
# periodic tasks (e.g. the scheduler's host discovery) start at once, not
# after a random delay of up to 60s
periodic_fuzzy_delay = 0
graceful_shutdown_timeout = 10
[api_database]
connection = {self._db('nova_api')}
sqlite_synchronous = false
[database]
connection = {self._db('nova_cell1')}
sqlite_synchronous = false
[conductor]
workers = 1
[scheduler]
workers = 1
# map new compute hosts into cell1 without nova-manage discover_hosts
discover_hosts_in_cells_interval = 5
[oslo_concurrency]
lock_path = {self.state}/lock
[quota]
# defaults (10 instances / 20 cores) are too small for stress tests
instances = -1
cores = -1
ram = -1
[placement]
# placement runs noauth2: token "admin" has the admin role
auth_type = admin_token
token = admin
endpoint = {PLACEMENT_URL}
[glance]
api_servers = http://127.0.0.1:{GLANCE_PORT}
[neutron]
auth_type = admin_token
token = admin
endpoint = http://127.0.0.1:{NEUTRON_PORT}
endpoint_override = http://127.0.0.1:{NEUTRON_PORT}
[vnc]
enabled = false
[spice]
enabled = false
[serial_console]
enabled = false
[oslo_messaging_notifications]
driver = noop
[service_user]
send_service_user_token = false
''')
        # oslo.log would name nova-api's file after the outermost script
        # (gunicorn.log); the computes share nova.conf, so not there
        (etc / 'nova-api.conf').write_text(
            '[DEFAULT]\nlog_file = nova-api.log\n')
        for host in self.hosts:
            # own state_path: FakeDriverWithoutFakeNodes keeps its node UUID
            # in state_path/compute_id, which lets a compute be restarted
            (self.state / host).mkdir()
            (etc / (host + '.conf')).write_text(
                '[DEFAULT]\nhost = %s\nstate_path = %s\nlog_file = %s.log\n'
                % (host, self.state / host, host))
        (etc / 'placement' / 'placement.conf').write_text(f'''\
[DEFAULT]
log_dir = {self.logs}
log_file = placement-api.log
[api]
auth_strategy = noauth2
[placement_database]
connection = {self._db('placement')}
sqlite_synchronous = false
''')
        (self.rabbit / 'rabbitmq.conf').write_text(
            'listeners.tcp.1 = 127.0.0.1:5672\nlog.file.level = warning\n')
        (self.rabbit / 'enabled_plugins').write_text('[].\n')
        Path(self.clouds_yaml).write_text(f'''\
clouds:
  {self.cloud}:
    auth_type: admin_token
    auth:
      token: "{TOKEN}"
      endpoint: {ENDPOINT}
    region_name: RegionOne
''')

    def _sync_databases(self):
        bin_ = self.venv / 'bin'
        nm = [str(bin_ / 'nova-manage'), '--config-file',
              str(self.etc / 'nova.conf')]
        init_log = open(self.logs / 'init.log', 'a')
        # placement's schema is independent: migrate it alongside nova's
        placement = subprocess.Popen(
            [str(bin_ / 'placement-manage'), '--config-file',
             str(self.etc / 'placement' / 'placement.conf'), 'db', 'sync'],
            stdout=init_log, stderr=subprocess.STDOUT)
        try:
            for args in (['api_db', 'sync'],
                         ['cell_v2', 'map_cell0', '--database_connection',
                          self._db('nova_cell0')],
                         ['cell_v2', 'create_cell', '--name', 'cell1'],
                         ['db', 'sync']):
                rc = subprocess.run(nm + args, stdout=init_log,
                                    stderr=subprocess.STDOUT).returncode
                if rc:
                    raise NovaLabError('nova-manage %s failed (rc %d)\n%s\n%s' % (
                        ' '.join(args), rc, _tail(self.logs / 'init.log'),
                        _tail(self.logs / 'nova-manage.log')))
        finally:
            rc = placement.wait()
            init_log.close()
            if rc:
                raise NovaLabError('placement-manage db sync failed (rc %d)'
                                   '\n%s' % (rc, _tail(self.logs / 'init.log')))
        import sqlite3
        for db in self.state.glob('*.sqlite'):
            # WAL: readers never block the single writer
            conn = sqlite3.connect(db)
            conn.execute('PRAGMA journal_mode=WAL')
            conn.close()

    # ---------------------------------------------------------- processes
    def _services(self):
        """name -> (argv, extra env, log files) of every daemon."""
        bin_ = self.venv / 'bin'
        nova = [str(self.etc / 'nova.conf')]
        gunicorn = [str(bin_ / 'gunicorn'), '--no-control-socket',
                    '--workers', '1', '--timeout', '120',
                    '--graceful-timeout', '5']
        lib_env = {'PYTHONPATH': str(self.lib)}
        svc = {
            'epmd': (['/usr/bin/epmd', '-address', '127.0.0.1'], {}, []),
            'rabbitmq': ([str(RABBIT_BIN / 'rabbitmq-server')],
                         self._rabbit_env(),
                         sorted(self.rabbit.glob('log/*'))),
            'stubs': ([self.python, str(self.lib / 'novalab.py'), '_stubs'],
                      {}, []),
            # ONE thread: two computes reporting inventory at once are
            # concurrent writers on placement's SQLite file
            'placement': (gunicorn + ['--threads', '1', '--bind',
                                      '127.0.0.1:8778',
                                      'novalab:placement_app()'],
                          dict(lib_env, OS_PLACEMENT_CONFIG_DIR=str(
                              self.etc / 'placement')),
                          [self.logs / 'placement-api.log']),
            'nova-api': (gunicorn + ['--threads', '4', '--bind',
                                     '127.0.0.1:8774',
                                     'novalab:nova_api_app()'],
                         dict(lib_env, OS_NOVA_CONFIG_DIR=str(self.etc),
                              OS_NOVA_CONFIG_FILES=(
                                  'api-paste.ini;nova.conf;nova-api.conf')),
                         [self.logs / 'nova-api.log']),
        }
        for binary in ('nova-conductor', 'nova-scheduler'):
            svc[binary] = ([str(bin_ / binary), '--config-file', *nova], {},
                           [self.logs / (binary + '.log')])
        for host in self.hosts:
            svc[host] = ([str(bin_ / 'nova-compute'), '--config-file', *nova,
                          '--config-file', str(self.etc / (host + '.conf'))],
                         {}, [self.logs / (host + '.log')])
        return svc

    def _rabbit_env(self):
        dist = '-kernel inet_dist_use_interface {127,0,0,1}'
        return {
            'HOME': str(self.rabbit),  # erlang cookie lives here
            'RABBITMQ_NODENAME': 'rabbit@localhost',
            'RABBITMQ_NODE_IP_ADDRESS': '127.0.0.1',
            'RABBITMQ_NODE_PORT': '5672',
            'RABBITMQ_DIST_PORT': '25672',
            'RABBITMQ_CONFIG_FILE': str(self.rabbit / 'rabbitmq.conf'),
            'RABBITMQ_MNESIA_BASE': str(self.rabbit / 'mnesia'),
            'RABBITMQ_LOG_BASE': str(self.rabbit / 'log'),
            'RABBITMQ_ENABLED_PLUGINS_FILE': str(self.rabbit /
                                                 'enabled_plugins'),
            'RABBITMQ_PID_FILE': str(self.rabbit / 'rabbit.pid'),
            'ERL_EPMD_ADDRESS': '127.0.0.1',
            'RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS': dist,
            # else rabbitmqctl's own node listens on 0.0.0.0:35672
            'RABBITMQ_CTL_ERL_ARGS': dist,
        }

    def _pid(self, name):
        """Recorded pid if that very process (same start time) still lives."""
        try:
            text = (self.run / (name + '.pid')).read_text()
            pid, start = map(int, text.split())
        except (OSError, ValueError):
            return None
        popen = self._popens.get(name)
        if popen is not None:
            popen.poll()  # reap it if it died, so it is not a zombie
        st = _proc_stat(pid)
        if st is None or st[2] != start or st[0] == 'Z':
            return None
        return pid

    def _running_names(self):
        return [f.stem for f in sorted(self.run.glob('*.pid'))
                if self._pid(f.stem)]

    def _spawn(self, name):
        argv, env, _ = self._services()[name]
        out = open(self.logs / (name + '.out'), 'ab')
        # own session = own process group: stop() can signal the service
        # together with its workers (gunicorn, oslo.service, beam.smp)
        popen = subprocess.Popen(argv, env=dict(os.environ, **env),
                                 stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT,
                                 start_new_session=True, cwd=str(self.root))
        out.close()
        self._popens[name] = popen
        (self.run / (name + '.pid')).write_text(
            '%d %d\n' % (popen.pid, _proc_stat(popen.pid)[2]))

    def _stop_many(self, names, timeout=STOP_TIMEOUT):
        groups = {n: self._pid(n) for n in names}
        groups = {n: p for n, p in groups.items() if p}
        for pid in groups.values():
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, pid in groups.items():
            while _group_members(pid) and time.monotonic() < deadline:
                self._pid(name)  # reaps our own children
                time.sleep(0.2)
            if _group_members(pid):
                log('%s (pgid %d) ignored SIGTERM, killing' % (name, pid))
                os.killpg(pid, signal.SIGKILL)
            self._pid(name)
        for name in names:
            (self.run / (name + '.pid')).unlink(missing_ok=True)

    def _failure(self, what, names):
        svcs = self._services()
        tails = []
        for name in names:
            files = [self.logs / (name + '.out')] + list(svcs[name][2])
            tails += [_tail(f) for f in files
                      if Path(f).exists() and Path(f).stat().st_size]
        return NovaLabError('%s\n%s' % (what, '\n'.join(tails)))

    def _wait(self, what, check, names, timeout=120, interval=0.5):
        """Poll check() until true; fail fast with log tails if one of
        `names` died, or when the timeout expires."""
        t0 = time.monotonic()
        error = None
        while True:
            try:
                if check():
                    log('%s after %.1fs' % (what, time.monotonic() - t0))
                    return
            except (OSError, NovaLabError, ValueError, LookupError) as e:
                error = e  # not up yet; reported if it never comes up
            dead = [n for n in names if not self._pid(n)]
            if dead:
                raise self._failure('%s died while waiting for: %s'
                                    % (', '.join(dead), what), dead)
            if time.monotonic() - t0 > timeout:
                raise self._failure('timed out after %ds waiting for: %s '
                                    '(last error: %s)' % (timeout, what, error),
                                    names)
            time.sleep(interval)

    # ---------------------------------------------------------- start/stop
    def start(self):
        """Start every daemon and wait until nova is usable."""
        if not (self.etc / 'nova.conf').exists():
            raise NovaLabError('not initialised: run init first')
        running = self._running_names()
        if running and self.is_running():
            log('already running')
            return
        if running:
            raise NovaLabError('partly running (%s): stop first'
                               % ', '.join(running))
        busy = [p for p in PORTS if _port_in_use(p)]
        if busy:
            raise NovaLabError('ports in use on 127.0.0.1: %s (another lab?)'
                               % busy)
        t0 = time.monotonic()
        # all at once: python imports overlap rabbitmq's boot; the nova
        # services retry AMQP.  epmd is ours (loopback only), so erl does
        # not spawn one we don't own.
        all_names = list(self._services())
        for name in all_names:
            self._spawn(name)
        try:
            self._wait_ready(all_names)
        except BaseException:
            log('start failed: stopping what was started (logs in %s)'
                % self.logs)
            self.stop()
            raise
        log('ready after %.1fs: %s token %s, hosts %s, flavor %s, image %s'
            % (time.monotonic() - t0, ENDPOINT, TOKEN, ' '.join(self.hosts),
               FLAVOR_ID, IMAGE_ID))
        log('openstacksdk: OS_CLIENT_CONFIG_FILE=%s OS_CLOUD=%s'
            % (self.clouds_yaml, self.cloud))

    def _wait_ready(self, all_names):
        self._wait('rabbitmq up', _amqp_ready, ['epmd', 'rabbitmq'])
        self._wait('placement answering',
                   lambda: _http_ok(PLACEMENT_URL + '/'), ['placement'])
        self._wait('nova-api answering', lambda: _http_ok(ENDPOINT + '/'),
                   ['nova-api'])

        def services_up():
            svcs = api('GET', '/os-services')['services']
            up = {(s['binary'], s['host']) for s in svcs if s['state'] == 'up'}
            want = {('nova-conductor', 'novalab-controller'),
                    ('nova-scheduler', 'novalab-controller')}
            want |= {('nova-compute', h) for h in self.hosts}
            return want <= up
        self._wait('nova services up', services_up, all_names, timeout=180)

        def hypervisors():  # compute nodes mapped into cell1
            hyp = api('GET', '/os-hypervisors')['hypervisors']
            return {h['hypervisor_hostname'] for h in hyp} >= set(self.hosts)
        self._wait('hypervisors visible', hypervisors, all_names, timeout=120)
        self._ensure_flavor()

    def _ensure_flavor(self):
        try:
            api('GET', '/flavors/' + FLAVOR_ID)
        except ApiError as e:
            if e.status != 404:
                raise
            api('POST', '/flavors', {'flavor': {
                'name': 'm1.tiny', 'id': FLAVOR_ID, 'vcpus': 1, 'ram': 512,
                'disk': 1}})

    def up(self):
        """install (if needed) + init (fresh state) + start."""
        self.install()
        self.init()
        self.start()

    def stop(self):
        """Stop only our recorded PIDs: TERM, wait, KILL."""
        t0 = time.monotonic()
        nova = ['nova-conductor', 'nova-scheduler'] + self.hosts
        # nova and the HTTP services first: they still talk to rabbitmq
        self._stop_many(nova + ['nova-api', 'placement', 'stubs'])
        self._stop_many(['rabbitmq'])
        self._stop_many(['epmd'], timeout=5)
        log('stopped in %.1fs' % (time.monotonic() - t0))

    def down(self):
        """stop + delete state, logs and configs (keeps the venv)."""
        self.stop()
        for d in (self.state, self.logs, self.run, self.etc, self.lib,
                  self.rabbit):
            shutil.rmtree(d, ignore_errors=True)
        Path(self.clouds_yaml).unlink(missing_ok=True)
        if self.venv.exists():
            # the hook's .pth must not outlive init's files
            for f in ('novalab_sqlite.pth', 'novalab_sqlite.py'):
                (self._site_packages() / f).unlink(missing_ok=True)
        log('state removed')

    def is_running(self):
        """All daemons alive and nova-api answering."""
        names = list(self._services())
        return (all(self._pid(n) for n in names)
                and _http_ok(ENDPOINT + '/'))

    def status(self):
        """name -> (pid or None, RSS in MB of its process group)."""
        out = {}
        for name in self._services():
            pid = self._pid(name)
            out[name] = (pid, _rss_mb(_group_members(pid)) if pid else 0.0)
        return out

    # ---------------------------------------------------------- host reset
    def _compute_service(self, host):
        svcs = api('GET', '/os-services?binary=nova-compute&host=' + host)
        return svcs['services'][0]

    def _require_running(self, host):
        if host not in self.hosts:
            raise NovaLabError('unknown host %s (have %s)' % (host, self.hosts))
        if not self._pid('nova-api'):
            raise NovaLabError('the lab is not running (start it first)')

    def restart_compute(self, host, timeout=120):
        """Restart one fake compute and wait until it has reported again.

        Needed after an evacuation: nova refuses to un-force a host while
        'done' evacuation migrations remain; the restarting compute cleans
        up the evacuated instances (init_host) and marks them 'completed'
        before its first state report.
        """
        self._require_running(host)
        self._stop_many([host])
        # API timestamps may drop sub-seconds: compare whole seconds
        since = datetime.datetime.now(datetime.timezone.utc).replace(
            microsecond=0, tzinfo=None)
        self._spawn(host)

        def reported():
            updated = self._compute_service(host)['updated_at']
            return updated and datetime.datetime.fromisoformat(
                updated.rstrip('Z')).replace(microsecond=0) > since
        self._wait('%s restarted and reporting' % host, reported, [host],
                   timeout=timeout)

    def reset_host(self, host, timeout=120):
        """Undo what a test may have done to a host's nova-compute: start it
        if it was killed, un-force it (restarting it first if nova refuses
        because of done evacuations), enable it, and wait for state up."""
        self._require_running(host)
        if not self._pid(host):
            self.restart_compute(host, timeout)
        svc = self._compute_service(host)
        if svc['forced_down']:
            try:
                api('PUT', '/os-services/' + svc['id'], {'forced_down': False})
            except ApiError as e:
                if e.status != 400 or 'evacuation' not in e.text:
                    raise
                self.restart_compute(host, timeout)
                api('PUT', '/os-services/' + svc['id'], {'forced_down': False})
        if svc['status'] != 'enabled':
            api('PUT', '/os-services/' + svc['id'], {'status': 'enabled'})

        def ready():
            s = self._compute_service(host)
            return (s['state'] == 'up' and s['status'] == 'enabled'
                    and not s['forced_down'])
        self._wait('%s up and enabled' % host, ready, [host], timeout=timeout)

    def connection(self, **overrides):
        """openstacksdk Connection to the lab, via our clouds.yaml.

        overrides go to the cloud config, e.g. compute_api_version='2.53'
        to pin the default compute microversion.
        """
        import openstack.config
        import openstack.connection
        region = openstack.config.OpenStackConfig(
            config_files=[self.clouds_yaml]).get_one(cloud=self.cloud,
                                                     **overrides)
        return openstack.connection.Connection(config=region)


# --------------------------------------- code that runs inside the nova venv
_IDENTITY_PREFIXES = ('HTTP_X_USER', 'HTTP_X_PROJECT', 'HTTP_X_TENANT',
                      'HTTP_X_ROLE', 'HTTP_X_SERVICE_', 'HTTP_X_DOMAIN',
                      'HTTP_X_IDENTITY_STATUS', 'HTTP_X_SYSTEM_SCOPE',
                      'HTTP_X_IS_ADMIN_PROJECT')


def noauth_filter_factory(global_conf, **local_conf):
    """Paste filter replacing keystonemiddleware in nova-api (TEST ONLY).

    Nova 34 dropped its noauth2 pipeline.  X-Auth-Token "user:project"
    becomes the identity headers NovaKeystoneContext reads; user "admin"
    gets roles admin,member,reader, anyone else member,reader.
    """
    def make(app):
        def noauth(environ, start_response):
            token = environ.get('HTTP_X_AUTH_TOKEN')
            if not token:
                start_response('401 Unauthorized',
                               [('Content-Type', 'text/plain')])
                return [b'X-Auth-Token "user:project" required\n']
            for key in [k for k in environ if k.startswith(_IDENTITY_PREFIXES)]:
                del environ[key]  # never trust client-sent identity
            user, _, project = token.partition(':')
            environ.update({
                'HTTP_X_USER_ID': user, 'HTTP_X_USER_NAME': user,
                'HTTP_X_PROJECT_ID': project or user,
                'HTTP_X_PROJECT_NAME': project or user,
                'HTTP_X_IDENTITY_STATUS': 'Confirmed',
                'HTTP_X_ROLES': ('admin,member,reader' if user == 'admin'
                                 else 'member,reader')})
            return app(environ, start_response)
        return noauth
    return make


def nova_api_app():
    """gunicorn entry 'novalab:nova_api_app()'.  Nova's WSGI init parses
    sys.argv with oslo.config and would choke on gunicorn's arguments."""
    sys.argv = ['nova-api']
    from nova.wsgi import osapi_compute
    return osapi_compute.application


def placement_app():
    sys.argv = ['placement-api']
    from placement.wsgi import api as placement_api
    return placement_api.application


def _glance(method, path):
    """Image metadata only: the fake virt driver never downloads images."""
    now = '2025-01-01T00:00:00Z'
    image = {'id': IMAGE_ID, 'name': 'novalab-image', 'status': 'active',
             'visibility': 'public', 'protected': False, 'os_hidden': False,
             'disk_format': 'raw', 'container_format': 'bare', 'size': 1024,
             'virtual_size': 1024, 'min_disk': 0, 'min_ram': 0,
             'owner': 'admin', 'tags': [], 'created_at': now,
             'updated_at': now, 'file': '/v2/images/%s/file' % IMAGE_ID,
             'self': '/v2/images/' + IMAGE_ID, 'schema': '/v2/schemas/image'}
    # permissive: glanceclient builds a warlock model from it
    schema = {'name': 'image', 'properties': {k: {} for k in image},
              'additionalProperties': {'type': 'string'}}
    if path in ('', '/versions'):
        return 200, {'versions': [{'id': 'v2.16', 'status': 'CURRENT', 'links': [
            {'rel': 'self', 'href': 'http://127.0.0.1:%d/v2/' % GLANCE_PORT}]}]}
    if path == '/v2/schemas/image':
        return 200, schema
    if method == 'GET' and path == '/v2/images':
        return 200, {'images': [image], 'schema': '/v2/schemas/images',
                     'first': '/v2/images'}
    if method == 'GET' and path == '/v2/images/' + IMAGE_ID:
        return 200, image
    # glanceclient only parses this error shape; others become nova 500s
    return 404, {'error': {'code': 404, 'title': 'Not Found',
                           'message': 'No image at %s' % path}}


def _neutron(method, path):
    """No ports, no networks: servers boot with networks='none'."""
    if path == '':
        return 200, {'versions': [{'id': 'v2.0', 'status': 'CURRENT', 'links': [
            {'rel': 'self', 'href': 'http://127.0.0.1:%d/v2.0/' % NEUTRON_PORT}]}]}
    parts = path.split('/')
    if method == 'GET' and len(parts) == 3 and parts[1] == 'v2.0':
        # every list (ports, networks, extensions, security-groups) is empty
        return 200, {parts[2].replace('-', '_'): []}
    return 404, {'NeutronError': {'type': 'NotFound', 'detail': '',
                                  'message': 'not in the novalab stub'}}


def serve_stubs():
    """glance stand-in on :9292 and neutron stand-in on :9696 (stdlib)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    def handler(route):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def _serve(self):
                length = int(self.headers.get('Content-Length') or 0)
                self.rfile.read(length)  # keep the connection in sync
                code, body = route(self.command,
                                   self.path.split('?')[0].rstrip('/'))
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

            def log_message(self, fmt, *args):
                print('%s %s' % (route.__name__, fmt % args), flush=True)
        return Handler

    ThreadingHTTPServer.request_queue_size = 64  # bursts of nova requests
    servers = [ThreadingHTTPServer(('127.0.0.1', GLANCE_PORT), handler(_glance)),
               ThreadingHTTPServer(('127.0.0.1', NEUTRON_PORT),
                                   handler(_neutron))]
    threading.Thread(target=servers[1].serve_forever, daemon=True).start()
    print('stubs: glance :%d neutron :%d' % (GLANCE_PORT, NEUTRON_PORT),
          flush=True)
    servers[0].serve_forever()


# ---------------------------------------------------------------- CLI
def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m tests.realnova.novalab',
                                     description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    for cmd in ('install', 'init', 'start', 'up', 'stop', 'status', 'down'):
        sub.add_parser(cmd)
    for cmd in ('restart-compute', 'reset-host'):
        sub.add_parser(cmd).add_argument('host')
    sub.add_parser('_stubs')  # internal: run the glance/neutron stubs
    args = parser.parse_args(argv)
    if args.cmd == '_stubs':
        return serve_stubs()
    lab = NovaLab()
    if args.cmd == 'status':
        print('%-16s %8s %8s' % ('NAME', 'PID', 'RSS_MB'))
        total = 0.0
        for name, (pid, rss) in lab.status().items():
            print('%-16s %8s %8.0f' % (name, pid or 'dead', rss))
            total += rss
        print('%-16s %8s %8.0f' % ('total', '', total))
        return 0 if lab.is_running() else 1
    try:
        with lab.exclusive():
            if args.cmd == 'restart-compute':
                lab.restart_compute(args.host)
            elif args.cmd == 'reset-host':
                lab.reset_host(args.host)
            else:
                getattr(lab, args.cmd)()
    except NovaLabError as e:
        log('ERROR: %s' % e)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

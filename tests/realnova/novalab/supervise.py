"""The lab's daemons: started in sessions of their own, their PIDs recorded under
$NOVALAB_DIR/run, stopped by those PIDs only, waited for with their logs at hand."""
import datetime
import os
import socket
import subprocess
import time
from pathlib import Path

from tests.harness.procs import (TimedOut, group_members, http_status,
                                 port_in_use, proc_stat, rss_mb, stop_groups,
                                 tail, wait_until)
from tests.realnova.novalab.layout import (ENDPOINT, FLAVOR_ID, PLACEMENT_URL,
                                           PORTS, RABBIT_BIN, NovaLabError,
                                           log)
from tests.realnova.novalab.nova_api import ApiError, api, compute_service

# nova services get SIGTERM first; computes may need a few seconds
STOP_TIMEOUT = 20


def _amqp_ready(port=5672):
    """True once RabbitMQ answers an AMQP 0-9-1 header (its listener opens
    last, when the broker is ready)."""
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=2) as s:
            s.sendall(b'AMQP\x00\x00\x09\x01')
            return s.recv(1) == b'\x01'  # frame type 1: Connection.Start
    except OSError:
        return False


def http_ok(url):
    status = http_status(url)
    return status is not None and status < 500


class Supervisor:
    def __init__(self, layout, hosts):
        self.layout, self.hosts = layout, hosts
        self._popens = {}  # children started by this process, to reap them

    def services(self):
        """name -> (argv, extra env, log files) of every daemon."""
        lay = self.layout
        bin_ = lay.venv / 'bin'
        nova = [str(lay.etc / 'nova.conf')]

        def gunicorn(workers, threads):
            return [str(bin_ / 'gunicorn'), '--no-control-socket',
                    '--workers', str(workers), '--threads', str(threads),
                    '--timeout', '120', '--graceful-timeout', '5']
        lib_env = {'PYTHONPATH': str(lay.lib)}
        svc = {
            'epmd': (['/usr/bin/epmd', '-address', '127.0.0.1'], {}, []),
            'rabbitmq': ([str(RABBIT_BIN / 'rabbitmq-server')],
                         self._rabbit_env(),
                         sorted(lay.rabbit.glob('log/*'))),
            'stubs': ([lay.python, str(lay.lib / 'novalab_shims.py')], {}, []),
            # ONE thread: two computes reporting inventory at once are
            # concurrent writers on placement's SQLite file
            'placement': (gunicorn(1, 1) + ['--bind', '127.0.0.1:8778',
                                            'novalab_shims:placement_app()'],
                          dict(lib_env, OS_PLACEMENT_CONFIG_DIR=str(
                              lay.etc / 'placement')),
                          [lay.logs / 'placement-api.log']),
            # two processes: one is bound to one core by the GIL, and a
            # host's worth of server actions arrives at once
            'nova-api': (gunicorn(2, 4) + ['--bind', '127.0.0.1:8774',
                                           'novalab_shims:nova_api_app()'],
                         dict(lib_env, OS_NOVA_CONFIG_DIR=str(lay.etc),
                              OS_NOVA_CONFIG_FILES=(
                                  'api-paste.ini;nova.conf;nova-api.conf')),
                         [lay.logs / 'nova-api.log']),
        }
        for binary in ('nova-conductor', 'nova-scheduler'):
            svc[binary] = ([str(bin_ / binary), '--config-file', *nova], {},
                           [lay.logs / (binary + '.log')])
        for host in self.hosts:
            svc[host] = ([str(bin_ / 'nova-compute'), '--config-file', *nova,
                          '--config-file', str(lay.etc / (host + '.conf'))],
                         {}, [lay.logs / (host + '.log')])
        return svc

    def _rabbit_env(self):
        rabbit = self.layout.rabbit
        dist = '-kernel inet_dist_use_interface {127,0,0,1}'
        return {
            'HOME': str(rabbit),  # erlang cookie lives here
            'RABBITMQ_NODENAME': 'rabbit@localhost',
            'RABBITMQ_NODE_IP_ADDRESS': '127.0.0.1',
            'RABBITMQ_NODE_PORT': '5672',
            'RABBITMQ_DIST_PORT': '25672',
            'RABBITMQ_CONFIG_FILE': str(rabbit / 'rabbitmq.conf'),
            'RABBITMQ_MNESIA_BASE': str(rabbit / 'mnesia'),
            'RABBITMQ_LOG_BASE': str(rabbit / 'log'),
            'RABBITMQ_ENABLED_PLUGINS_FILE': str(rabbit / 'enabled_plugins'),
            'RABBITMQ_PID_FILE': str(rabbit / 'rabbit.pid'),
            'ERL_EPMD_ADDRESS': '127.0.0.1',
            'RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS': dist,
            # else rabbitmqctl's own node listens on 0.0.0.0:35672
            'RABBITMQ_CTL_ERL_ARGS': dist,
        }

    def pid(self, name):
        """Recorded pid if that very process (same start time) still lives."""
        try:
            text = (self.layout.run / (name + '.pid')).read_text()
            pid, start = map(int, text.split())
        except (OSError, ValueError):
            return None
        popen = self._popens.get(name)
        if popen is not None:
            popen.poll()  # reap it if it died, so it is not a zombie
        st = proc_stat(pid)
        if st is None or st[2] != start or st[0] == 'Z':
            return None
        return pid

    def running_names(self):
        return [f.stem for f in sorted(self.layout.run.glob('*.pid'))
                if self.pid(f.stem)]

    def spawn(self, name):
        argv, env, _ = self.services()[name]
        out = open(self.layout.logs / (name + '.out'), 'ab')
        # own session = own process group: stop_many() can signal the
        # service together with its workers (gunicorn, oslo.service, beam.smp)
        popen = subprocess.Popen(argv, env=dict(os.environ, **env),
                                 stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT,
                                 start_new_session=True,
                                 cwd=str(self.layout.root))
        out.close()
        self._popens[name] = popen
        (self.layout.run / (name + '.pid')).write_text(
            '%d %d\n' % (popen.pid, proc_stat(popen.pid)[2]))

    def stop_many(self, names, timeout=STOP_TIMEOUT):
        groups = {n: self.pid(n) for n in names}
        groups = {n: p for n, p in groups.items() if p}
        killed = stop_groups(list(groups.values()), timeout=timeout,
                             reap=lambda: [self.pid(n) for n in groups])
        for name, pid in groups.items():
            if pid in killed:
                log('%s (pgid %d) ignored SIGTERM, killed' % (name, pid))
        for name in names:
            (self.layout.run / (name + '.pid')).unlink(missing_ok=True)

    def _failure(self, what, names):
        svcs = self.services()
        tails = []
        for name in names:
            files = [self.layout.logs / (name + '.out')] + list(svcs[name][2])
            tails += ['--- %s\n%s' % (f, tail(f)) for f in files
                      if Path(f).exists() and Path(f).stat().st_size]
        return NovaLabError('%s\n%s' % (what, '\n'.join(tails)))

    def wait(self, what, check, names, timeout=120, interval=0.5):
        """Poll check() until true; fail fast with log tails if one of
        `names` died, or when the timeout expires."""
        t0 = time.monotonic()
        errors = []

        def ready():
            try:
                if check():
                    return True
            except (OSError, NovaLabError, ValueError, LookupError) as e:
                errors[:] = [e]  # not up yet; reported if it never comes up
            dead = [n for n in names if not self.pid(n)]
            if dead:
                raise self._failure('%s died while waiting for: %s'
                                    % (', '.join(dead), what), dead)
            return False

        try:
            wait_until(what, ready, timeout, interval)
        except TimedOut:
            raise self._failure('timed out after %ds waiting for: %s '
                                '(last error: %s)' % (
                                    timeout, what, errors[0] if errors else None),
                                names) from None
        log('%s after %.1fs' % (what, time.monotonic() - t0))

    # ---------------------------------------------------------- start/stop
    def start(self):
        """Start every daemon and wait until nova is usable."""
        running = self.running_names()
        if running and self.is_running():
            log('already running')
            return False
        if running:
            raise NovaLabError('partly running (%s): stop first'
                               % ', '.join(running))
        busy = [p for p in PORTS if port_in_use(p)]
        if busy:
            raise NovaLabError('ports in use on 127.0.0.1: %s (another lab?)'
                               % busy)
        # all at once: python imports overlap rabbitmq's boot; the nova
        # services retry AMQP.  epmd is ours (loopback only), so erl does
        # not spawn one we don't own.
        all_names = list(self.services())
        for name in all_names:
            self.spawn(name)
        try:
            self._wait_ready(all_names)
        except BaseException:
            log('start failed: stopping what was started (logs in %s)'
                % self.layout.logs)
            self.stop()
            raise
        return True

    def _wait_ready(self, all_names):
        self.wait('rabbitmq up', _amqp_ready, ['epmd', 'rabbitmq'])
        self.wait('placement answering',
                  lambda: http_ok(PLACEMENT_URL + '/'), ['placement'])
        self.wait('nova-api answering', lambda: http_ok(ENDPOINT + '/'),
                  ['nova-api'])

        def services_up():
            svcs = api('GET', '/os-services')['services']
            up = {(s['binary'], s['host']) for s in svcs if s['state'] == 'up'}
            want = {('nova-conductor', 'novalab-controller'),
                    ('nova-scheduler', 'novalab-controller')}
            want |= {('nova-compute', h) for h in self.hosts}
            return want <= up
        self.wait('nova services up', services_up, all_names, timeout=180)

        def hypervisors():  # compute nodes mapped into cell1
            hyp = api('GET', '/os-hypervisors')['hypervisors']
            return {h['hypervisor_hostname'] for h in hyp} >= set(self.hosts)
        self.wait('hypervisors visible', hypervisors, all_names, timeout=120)
        self._ensure_flavor()

    @staticmethod
    def _ensure_flavor():
        try:
            api('GET', '/flavors/' + FLAVOR_ID)
        except ApiError as e:
            if e.status != 404:
                raise
            api('POST', '/flavors', {'flavor': {
                'name': 'm1.tiny', 'id': FLAVOR_ID, 'vcpus': 1, 'ram': 512,
                'disk': 1}})

    def stop(self):
        """Stop only our recorded PIDs: TERM, wait, KILL."""
        nova = ['nova-conductor', 'nova-scheduler'] + list(self.hosts)
        # nova and the HTTP services first: they still talk to rabbitmq
        self.stop_many(nova + ['nova-api', 'placement', 'stubs'])
        self.stop_many(['rabbitmq'])
        self.stop_many(['epmd'], timeout=5)

    def is_running(self):
        """All daemons alive and nova-api answering."""
        return (all(self.pid(n) for n in self.services())
                and http_ok(ENDPOINT + '/'))

    def status(self):
        """name -> (pid or None, RSS in MB of its process group)."""
        out = {}
        for name in self.services():
            pid = self.pid(name)
            out[name] = (pid, rss_mb(group_members(pid)) if pid else 0.0)
        return out

    # ---------------------------------------------------------- one compute
    def restart_compute(self, host, timeout=120):
        """Restart one fake compute and wait until it has reported again."""
        self.stop_many([host])
        # API timestamps may drop sub-seconds: compare whole seconds
        since = datetime.datetime.now(datetime.timezone.utc).replace(
            microsecond=0, tzinfo=None)
        self.spawn(host)

        def reported():
            updated = compute_service(host)['updated_at']
            return updated and datetime.datetime.fromisoformat(
                updated.rstrip('Z')).replace(microsecond=0) > since
        self.wait('%s restarted and reporting' % host, reported, [host],
                  timeout=timeout)

"""NovaLab: the lab as one object, for the command line, the pytest fixture and benchmarks."""
import contextlib
import fcntl
import os
import shutil
import time

from tests.realnova.novalab import config, install
from tests.realnova.novalab.layout import (ENDPOINT, FLAVOR_ID, HOSTS, TOKEN,
                                           Layout, NovaLabError, log)
from tests.realnova.novalab.nova_api import ApiError, api, compute_service
from tests.realnova.novalab.shims import IMAGE_ID
from tests.realnova.novalab.supervise import Supervisor

# how long a test session or CLI command waits for another one to finish
# with the lab (see NovaLab.exclusive)
LOCK_TIMEOUT = 1800


class NovaLab:
    cloud = config.CLOUD
    token = TOKEN
    endpoint = ENDPOINT
    image_id = IMAGE_ID
    flavor_id = FLAVOR_ID

    def __init__(self, root=None):
        self.layout = Layout(root)
        self.root = self.layout.root
        self.python = self.layout.python
        self.clouds_yaml = self.layout.clouds_yaml
        self.hosts = list(HOSTS)
        self.supervisor = Supervisor(self.layout, self.hosts)
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

    @contextlib.contextmanager
    def session(self):
        """The lab held for this process, with every compute host up, enabled,
        not forced down: a running lab is reused and left running, else one is
        started here and stopped at the end (the real_nova fixture, benchmarks)."""
        with self.exclusive():
            started = not self.is_running()
            if started:
                self.stop()  # leftovers of a half-running lab (our PIDs only)
                try:
                    self.up()
                except BaseException:
                    self.stop()
                    raise
            try:
                for host in self.hosts:  # a reused lab may carry earlier state
                    self.reset_host(host)
                yield self
            finally:
                if started:
                    self.stop()

    # ---------------------------------------------------------- life cycle
    def install(self):
        """apt rabbitmq-server + the pinned nova venv; skips what exists."""
        install.install(self.layout)

    def init(self):
        """Fresh configs and SQLite databases (wipes previous state)."""
        lay = self.layout
        if not (lay.venv / 'bin' / 'nova-manage').exists():
            raise NovaLabError('no venv at %s: run install first' % lay.venv)
        if self.supervisor.running_names():
            raise NovaLabError('services are running: stop first')
        t0 = time.monotonic()
        for d in lay.generated:
            shutil.rmtree(d, ignore_errors=True)
        for d in (lay.state / 'lock', lay.logs, lay.run, lay.etc / 'placement',
                  lay.lib, lay.rabbit / 'mnesia', lay.rabbit / 'log'):
            d.mkdir(parents=True)
        config.write_code(lay)
        config.write_configs(lay, self.hosts)
        config.sync_databases(lay)
        log('init done in %.1fs' % (time.monotonic() - t0))

    def start(self):
        """Start every daemon and wait until nova is usable."""
        if not (self.layout.etc / 'nova.conf').exists():
            raise NovaLabError('not initialised: run init first')
        t0 = time.monotonic()
        if not self.supervisor.start():
            return
        log('ready after %.1fs: %s token %s, hosts %s, flavor %s, image %s'
            % (time.monotonic() - t0, ENDPOINT, TOKEN, ' '.join(self.hosts),
               FLAVOR_ID, IMAGE_ID))
        log('openstacksdk: OS_CLIENT_CONFIG_FILE=%s OS_CLOUD=%s'
            % (self.clouds_yaml, self.cloud))

    def up(self):
        """install (if needed) + init (fresh state) + start."""
        self.install()
        self.init()
        self.start()

    def stop(self):
        """Stop only our recorded PIDs: TERM, wait, KILL."""
        t0 = time.monotonic()
        self.supervisor.stop()
        log('stopped in %.1fs' % (time.monotonic() - t0))

    def down(self):
        """stop + delete state, logs and configs (keeps the venv)."""
        self.stop()
        for d in self.layout.generated:
            shutil.rmtree(d, ignore_errors=True)
        self.layout.root.joinpath('clouds.yaml').unlink(missing_ok=True)
        if self.layout.venv.exists():
            # the hook's .pth must not outlive init's files
            for f in ('novalab_sqlite.pth', 'novalab_sqlite.py'):
                (self.layout.site_packages() / f).unlink(missing_ok=True)
        log('state removed')

    def is_running(self):
        """All daemons alive and nova-api answering."""
        return self.supervisor.is_running()

    def status(self):
        """name -> (pid or None, RSS in MB of its process group)."""
        return self.supervisor.status()

    # ---------------------------------------------------------- hosts
    def _require_running(self, host):
        if host not in self.hosts:
            raise NovaLabError('unknown host %s (have %s)' % (host, self.hosts))
        if not self.supervisor.pid('nova-api'):
            raise NovaLabError('the lab is not running (start it first)')

    def restart_compute(self, host, timeout=120):
        """Restart one fake compute and wait until it has reported again.

        Needed after an evacuation: nova refuses to un-force a host while
        'done' evacuation migrations remain; the restarting compute cleans
        up the evacuated instances (init_host) and marks them 'completed'
        before its first state report.
        """
        self._require_running(host)
        self.supervisor.restart_compute(host, timeout)

    def reset_host(self, host, timeout=120):
        """Undo what a test may have done to a host's nova-compute: start it
        if it was killed, un-force it (restarting it first if nova refuses
        because of done evacuations), enable it, and wait for state up."""
        self._require_running(host)
        if not self.supervisor.pid(host):
            self.supervisor.restart_compute(host, timeout)
        svc = compute_service(host)
        if svc['forced_down']:
            try:
                api('PUT', '/os-services/' + svc['id'], {'forced_down': False})
            except ApiError as e:
                if e.status != 400 or 'evacuation' not in e.text:
                    raise
                self.supervisor.restart_compute(host, timeout)
                api('PUT', '/os-services/' + svc['id'], {'forced_down': False})
        if svc['status'] != 'enabled':
            api('PUT', '/os-services/' + svc['id'], {'status': 'enabled'})

        def ready():
            s = compute_service(host)
            return (s['state'] == 'up' and s['status'] == 'enabled'
                    and not s['forced_down'])
        self.supervisor.wait('%s up and enabled' % host, ready, [host],
                             timeout=timeout)

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

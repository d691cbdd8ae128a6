"""The lab's configuration and databases: what init writes under $NOVALAB_DIR."""
import shutil
import sqlite3
import subprocess
from pathlib import Path

from tests.harness.procs import tail
from tests.realnova.novalab.layout import (ENDPOINT, PLACEMENT_URL, TOKEN,
                                           NovaLabError)
from tests.realnova.novalab.shims import GLANCE_PORT, NEUTRON_PORT

CLOUD = 'novalab'  # its name in clouds.yaml
SQLITE_OPTS = '?timeout=60'  # pysqlite busy timeout, seconds
HERE = Path(__file__).resolve().parent


def write_code(layout):
    """The shims for nova's processes (PYTHONPATH=lib), and the SQLite hook
    in the venv's site-packages, imported by a .pth line in every process."""
    shutil.copyfile(HERE / 'shims.py', layout.lib / 'novalab_shims.py')
    site = layout.site_packages()
    shutil.copyfile(HERE / 'sqlite_hook.py', site / 'novalab_sqlite.py')
    (site / 'novalab_sqlite.pth').write_text('import novalab_sqlite\n')


def _db(layout, name):
    return 'sqlite:///%s/%s.sqlite%s' % (layout.state, name, SQLITE_OPTS)


def write_configs(layout, hosts):
    """nova, placement, RabbitMQ and clouds.yaml, all on 127.0.0.1."""
    etc = layout.etc
    paste = (layout.venv / 'etc' / 'nova' / 'api-paste.ini').read_text()
    patched = paste.replace(' authtoken keystonecontext ',
                            ' noauth keystonecontext ')
    if patched == paste:
        raise NovaLabError('api-paste.ini layout changed: no authtoken')
    (etc / 'api-paste.ini').write_text(
        patched + '\n[filter:noauth]\n'
        'paste.filter_factory = novalab_shims:noauth_filter_factory\n')
    (etc / 'nova.conf').write_text(f'''\
[DEFAULT]
host = novalab-controller
my_ip = 127.0.0.1
state_path = {layout.state}
log_dir = {layout.logs}
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
connection = {_db(layout, 'nova_api')}
sqlite_synchronous = false
[database]
connection = {_db(layout, 'nova_cell1')}
sqlite_synchronous = false
[conductor]
workers = 1
[scheduler]
workers = 1
# map new compute hosts into cell1 without nova-manage discover_hosts
discover_hosts_in_cells_interval = 5
[oslo_concurrency]
lock_path = {layout.state}/lock
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
    for host in hosts:
        # own state_path: FakeDriverWithoutFakeNodes keeps its node UUID
        # in state_path/compute_id, which lets a compute be restarted
        (layout.state / host).mkdir()
        (etc / (host + '.conf')).write_text(
            '[DEFAULT]\nhost = %s\nstate_path = %s\nlog_file = %s.log\n'
            % (host, layout.state / host, host))
    (etc / 'placement' / 'placement.conf').write_text(f'''\
[DEFAULT]
log_dir = {layout.logs}
log_file = placement-api.log
[api]
auth_strategy = noauth2
[placement_database]
connection = {_db(layout, 'placement')}
sqlite_synchronous = false
''')
    (layout.rabbit / 'rabbitmq.conf').write_text(
        'listeners.tcp.1 = 127.0.0.1:5672\nlog.file.level = warning\n')
    (layout.rabbit / 'enabled_plugins').write_text('[].\n')
    Path(layout.clouds_yaml).write_text(f'''\
clouds:
  {CLOUD}:
    auth_type: admin_token
    auth:
      token: "{TOKEN}"
      endpoint: {ENDPOINT}
    region_name: RegionOne
''')


def sync_databases(layout):
    """Every schema, in fresh SQLite files."""
    bin_ = layout.venv / 'bin'
    nm = [str(bin_ / 'nova-manage'), '--config-file',
          str(layout.etc / 'nova.conf')]
    init_log = open(layout.logs / 'init.log', 'a')
    # placement's schema is independent: migrate it alongside nova's
    placement = subprocess.Popen(
        [str(bin_ / 'placement-manage'), '--config-file',
         str(layout.etc / 'placement' / 'placement.conf'), 'db', 'sync'],
        stdout=init_log, stderr=subprocess.STDOUT)
    try:
        for args in (['api_db', 'sync'],
                     ['cell_v2', 'map_cell0', '--database_connection',
                      _db(layout, 'nova_cell0')],
                     ['cell_v2', 'create_cell', '--name', 'cell1'],
                     ['db', 'sync']):
            rc = subprocess.run(nm + args, stdout=init_log,
                                stderr=subprocess.STDOUT,
                                timeout=600).returncode
            if rc:
                raise NovaLabError('nova-manage %s failed (rc %d)\n%s\n%s' % (
                    ' '.join(args), rc, tail(layout.logs / 'init.log'),
                    tail(layout.logs / 'nova-manage.log')))
    finally:
        rc = placement.wait()
        init_log.close()
        if rc:
            raise NovaLabError('placement-manage db sync failed (rc %d)'
                               '\n%s' % (rc, tail(layout.logs / 'init.log')))
    for db in layout.state.glob('*.sqlite'):
        # WAL: readers never block the single writer
        conn = sqlite3.connect(db)
        conn.execute('PRAGMA journal_mode=WAL')
        conn.close()

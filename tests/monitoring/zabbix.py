"""A throw-away Zabbix 6.0 on 127.0.0.1: a private PostgreSQL cluster, zabbix_server and the
PHP frontend (for its JSON-RPC API) under php -S, all in the foreground, all stopped by PID.

Nothing is written outside the work directory: Debian's frontend reads its configuration
from a fixed path (/etc/zabbix/zabbix.conf.php), so the test serves a copy of the frontend
whose path constant points into the work directory instead.
"""

from __future__ import annotations

import random
import re
import socket
import shutil
import subprocess
import time
from pathlib import Path

import requests

from tests.harness.procs import free_port, wait_until
from tests.harness.postgres import PostgresCluster
from tests.monitoring.harness import Daemon, Stack, Workdir

SCHEMA = Path("/usr/share/zabbix-server-pgsql")
FRONTEND = Path("/usr/share/zabbix")

SERVER_CONF = """ListenIP=127.0.0.1
ListenPort={server_port}
LogType=file
LogFile={w}/log/zabbix_server.log
PidFile={w}/run/zabbix_server.pid
SocketDir={w}/run
DBHost={w}/run
DBPort={pg_port}
DBName=zabbix
DBUser=zabbix
User=zabbix
Timeout=4
StartPollers=1
StartPollersUnreachable=1
StartTrappers=2
StartPingers=0
StartDiscoverers=0
StartHTTPPollers=0
StartTimers=1
StartEscalators=1
StartAlerters=1
StartPreprocessors=1
StartLLDProcessors=1
StartReportWriters=0
StartODBCPollers=0
StartHistoryPollers=1
CacheSize=32M
HistoryCacheSize=16M
HistoryIndexCacheSize=4M
TrendCacheSize=4M
ValueCacheSize=16M
CacheUpdateFrequency=2
HousekeepingFrequency=0
"""
# CacheUpdateFrequency=2: API changes reach the server within 2 s (default 60 s)

FRONTEND_CONF = """<?php
$DB['TYPE'] = 'POSTGRESQL';
$DB['SERVER'] = '127.0.0.1';
$DB['PORT'] = '{pg_port}';
$DB['DATABASE'] = 'zabbix';
$DB['USER'] = 'zabbix';
$DB['PASSWORD'] = '';
$DB['SCHEMA'] = '';
$DB['ENCRYPTION'] = false;
$DB['KEY_FILE'] = '';
$DB['CERT_FILE'] = '';
$DB['CA_FILE'] = '';
$DB['VERIFY_HOST'] = false;
$DB['CIPHER_LIST'] = '';
$DB['VAULT_URL'] = '';
$DB['VAULT_DB_PATH'] = '';
$DB['VAULT_TOKEN'] = '';
$DB['DOUBLE_IEEE754'] = true;
$ZBX_SERVER = '127.0.0.1';
$ZBX_SERVER_PORT = '{server_port}';
$ZBX_SERVER_NAME = 'test';
$IMAGE_FORMAT_DEFAULT = IMAGE_FORMAT_PNG;
"""


def low_port() -> int:
    """A free port Zabbix accepts: its ListenPort must be 1024-32767 (free_port() is often above)."""
    while True:
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


class Zabbix:
    def __init__(self, workdir: Workdir, stack: Stack):
        self.w, self.workdir, self.stack = workdir.path, workdir, stack
        self.pg_port, self.server_port, self.web_port = free_port(), low_port(), free_port()
        self.api_url = f"http://127.0.0.1:{self.web_port}/api_jsonrpc.php"
        self.auth: str | None = None
        self.server: Daemon | None = None

    # ---- bring-up -------------------------------------------------------------------------

    def start(self) -> "Zabbix":
        self._postgres()
        self._server()
        self._frontend()
        self.auth = self.call("user.login", {"username": "Admin", "password": "zabbix"})
        return self

    def _postgres(self) -> None:
        w = self.w
        (w / "run").mkdir()
        (w / "run").chmod(0o777)  # postgres puts its socket here, zabbix_server its own
        pg = self.stack.start(PostgresCluster(w / "pg", socket_dir=w / "run", port=self.pg_port))
        pg.execute("create user zabbix", "create database zabbix owner zabbix")
        # schema, images, data: the slow part (about 10 s here)
        dump = subprocess.Popen(["zcat", *(SCHEMA / f"{part}.sql.gz" for part in ("schema", "images", "data"))],
                                stdout=subprocess.PIPE)
        done = subprocess.run([str(a) for a in (*pg.psql, "-U", "zabbix", "zabbix")], stdin=dump.stdout,
                              capture_output=True, text=True, timeout=300)
        dump.stdout.close()
        assert dump.wait() == 0 and done.returncode == 0, f"Zabbix schema import failed:\n{done.stderr[-3000:]}"

    def _server(self) -> None:
        w = self.w
        (w / "log").mkdir()
        shutil.chown(w / "log", "zabbix", "zabbix")
        self.workdir.write("etc/zabbix_server.conf",
                           SERVER_CONF.format(w=w, pg_port=self.pg_port, server_port=self.server_port))
        # -f: foreground; started as root it runs as User=zabbix
        self.server = self.stack.start(Daemon("zabbix_server", ["zabbix_server", "-c", w / "etc/zabbix_server.conf",
                                                                "-f"], self.workdir))

    def _frontend(self) -> None:
        w = self.w
        shutil.copytree(FRONTEND, w / "frontend", symlinks=True)
        conf = w / "frontend/include/classes/core/CConfigFile.php"
        text, n = re.subn(r"CONFIG_FILE_PATH = '[^']*'", f"CONFIG_FILE_PATH = '{w}/zabbix.conf.php'", conf.read_text())
        assert n == 1, "CConfigFile.php: no CONFIG_FILE_PATH to point at the work directory"
        conf.write_text(text)
        self.workdir.write("zabbix.conf.php", FRONTEND_CONF.format(pg_port=self.pg_port, server_port=self.server_port))
        php = self.stack.start(Daemon("php", ["php", "-S", f"127.0.0.1:{self.web_port}", "-t", w / "frontend"],
                                      self.workdir))

        def answers():
            php.check()
            self.server.check()
            try:
                return "result" in requests.post(self.api_url, json={
                    "jsonrpc": "2.0", "method": "apiinfo.version", "params": {}, "id": 1}, timeout=5).json()
            except (requests.RequestException, ValueError):
                return False

        wait_until("Zabbix API", answers, 60, interval=0.2)

    # ---- use ------------------------------------------------------------------------------

    def call(self, method: str, params, auth: str | None = None):
        body = {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}
        token = auth or self.auth
        if token and method not in ("user.login", "apiinfo.version"):
            body["auth"] = token
        answer = requests.post(self.api_url, json=body, timeout=60).json()
        if "error" in answer:
            raise AssertionError(f"Zabbix API {method}: {answer['error']}")
        return answer["result"]

    def send(self, host: str, key: str, value: str) -> bool:
        """zabbix_sender; False while the server does not know the item yet."""
        done = subprocess.run(["zabbix_sender", "-z", "127.0.0.1", "-p", str(self.server_port), "-s", host,
                               "-k", key, "-o", value], capture_output=True, text=True, timeout=30)
        return "processed: 1" in done.stdout

    def api_token(self, name: str, userid: str = "1") -> str:
        """A new API token (Users > API tokens) of a user, Admin by default."""
        tokenid = self.call("token.create", {"name": name, "userid": userid})["tokenids"][0]
        return self.call("token.generate", [tokenid])[0]["token"]

    def maintain(self, hostid: str, name: str, seconds: int = 3600) -> str:
        """A maintenance period with data collection, started a minute ago; returns its id once
        Zabbix's timer has put the host in it (it looks at the start of every minute)."""
        start = int(time.time()) - 60
        maintenanceid = self.call("maintenance.create", {
            "name": name, "active_since": start, "active_till": start + seconds, "maintenance_type": 0,
            "hosts": [{"hostid": hostid}], "timeperiods": [{"timeperiod_type": 0, "start_date": start,
                                                          "period": seconds}]})["maintenanceids"][0]
        wait_until(f"Zabbix puts host {hostid} in maintenance", lambda: self.call("host.get", {
            "hostids": hostid, "output": ["maintenance_status"]})[0]["maintenance_status"] == "1", 150, 1)
        return maintenanceid

    def alerts(self) -> list[dict]:
        """What the server did with each notification (status 1 sent, 2 failed, error text)."""
        return self.call("alert.get", {"output": ["alertid", "status", "error", "retries", "subject"],
                                       "sortfield": "alertid"})

    # ---- the setup alert_templates/zabbix/README.md describes, through the API ----------------

    def provision(self, media_type_yaml: str, bridge_url: str, token: str, pause_suppressed: bool = True) -> dict:
        self.call("configuration.import", {"format": "yaml", "source": media_type_yaml,
                                           "rules": {"mediaTypes": {"createMissing": True, "updateExisting": True}}})
        [media] = self.call("mediatype.get", {"filter": {"name": "nova-hostdown-bridge"},
                                              "output": ["mediatypeid", "parameters"]})
        parameters = [{**p, "value": bridge_url} if p["name"] == "URL" else p for p in media["parameters"]]
        self.call("mediatype.update", {"mediatypeid": media["mediatypeid"], "parameters": parameters})
        self.call("usermacro.createglobal", {"macro": "{$HOSTDOWN_BRIDGE.TOKEN}", "value": token, "type": 1})
        group = self.call("hostgroup.create", {"name": "OpenStack compute"})["groupids"][0]
        host = self.call("host.create", {
            "host": "compute-01", "groups": [{"groupid": group}],
            "tags": [{"tag": "openstack_host", "value": "compute-01"}],
            "interfaces": [{"type": 1, "main": 1, "useip": 1, "ip": "127.0.0.1", "dns": "", "port": "10050"}],
        })["hostids"][0]
        self.call("item.create", {"hostid": host, "name": "compute alive", "key_": "compute.alive",
                                  "type": 2, "value_type": 3})  # trapper, fed by zabbix_sender
        self.call("trigger.create", {"description": "Compute node {HOST.NAME} is unavailable",
                                     "expression": "last(/compute-01/compute.alive)=0", "priority": 4,
                                     "tags": [{"tag": "scope", "value": "availability"}]})
        # the recipient: may read the compute hosts (no notification otherwise), time zone UTC
        users = self.call("usergroup.create", {"name": "nova-hostdown-bridge",
                                               "rights": [{"id": group, "permission": 2}]})["usrgrpids"][0]
        user = self.call("user.create", {
            "username": "hostdown-bridge", "passwd": "not-for-login-7Q!x", "roleid": "1", "timezone": "UTC",
            "usrgrps": [{"usrgrpid": users}],
            "medias": [{"mediatypeid": media["mediatypeid"], "sendto": "hostdown-bridge", "active": 0,
                        "severity": 63, "period": "1-7,00:00-24:00"}],
        })["userids"][0]
        message = {"operationtype": 0, "opmessage": {"default_msg": 1, "mediatypeid": media["mediatypeid"]},
                   "opmessage_usr": [{"userid": user}]}
        self.call("action.create", {
            "name": "nova-hostdown-bridge", "eventsource": 0, "status": 0, "esc_period": "1h",
            "pause_suppressed": int(pause_suppressed),
            "filter": {"evaltype": 0, "conditions": [{"conditiontype": 0, "operator": 0, "value": group}]},
            "operations": [{**message, "esc_step_from": 1, "esc_step_to": 1}],
            "recovery_operations": [message], "update_operations": [message]})
        return {"group": group, "host": host, "user": user, "mediatype": media["mediatypeid"]}

"""sushy-tools' Redfish emulator for tests: fake driver, 127.0.0.1, a free port, HTTP basic and
session auth with a password made per run, optionally TLS with a certificate made per run.

Modes (tests/harness/sushy_emulator.py): the fake driver's random 1-11 s power delay, instant,
or stuck on (accepts ForceOff, never reads back off).
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import sys
from pathlib import Path

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.harness.procs import Peer, Process, free_port, port_in_use, wait_until

RUNNER = Path(__file__).resolve().parent / "sushy_emulator.py"
USERNAME = "admin"
# one system per test that powers something off, so tests share an emulator safely
SYSTEMS = ("compute-01", "compute-02", "compute-03", "compute-04", "compute-05", "compute-06")


def system_uuid(name: str) -> str:
    return f"11111111-1111-1111-1111-{SYSTEMS.index(name) + 1:012d}"


def self_signed(cert: Path, key: Path, host: str = "127.0.0.1") -> None:
    """A self-signed certificate for host (an IP), usable as its own CA bundle."""
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(private.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                   .sign(private, hashes.SHA256()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


class RedfishEmulator(Peer):
    def __init__(self, workdir: Path, *, instant: bool = True, tls: bool = False, stuck_on: bool = False):
        self.workdir, self.instant, self.tls, self.stuck_on = workdir, instant, tls, stuck_on
        self.port = free_port()
        self.password = "rf-" + secrets.token_urlsafe(12)
        self.ca_file = workdir / "bmc.crt" if tls else None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _config(self) -> Path:
        (self.workdir / "state").mkdir(parents=True, exist_ok=True)
        htpasswd = self.workdir / "htpasswd"
        htpasswd.write_text(f"{USERNAME}:{bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(4)).decode()}\n")
        systems = [{"uuid": system_uuid(n), "name": n, "power_state": "On",
                    "nics": [{"mac": f"52:54:00:00:00:{i + 1:02x}", "ip": "127.0.0.1"}]}
                   for i, n in enumerate(SYSTEMS)]
        config = self.workdir / "emulator.conf"
        config.write_text(f"SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\n"
                          f"SUSHY_EMULATOR_LISTEN_PORT = {self.port}\n"
                          f"SUSHY_EMULATOR_FAKE_DRIVER = True\n"
                          f"SUSHY_EMULATOR_STATE_DIR = {str(self.workdir / 'state')!r}\n"
                          f"SUSHY_EMULATOR_AUTH_FILE = {str(htpasswd)!r}\n"
                          f"SUSHY_EMULATOR_FEATURE_SET = 'full'\n"
                          f"SUSHY_EMULATOR_FAKE_SYSTEMS = {systems!r}\n")
        return config

    def start(self, timeout: float = 60) -> "RedfishEmulator":
        argv = [sys.executable, RUNNER, "--config", self._config()]
        if self.tls:
            key = self.workdir / "bmc.key"
            self_signed(self.ca_file, key)
            argv += ["--ssl-certificate", self.ca_file, "--ssl-key", key]
        argv += ["--instant"] * self.instant + ["--stuck-on"] * self.stuck_on
        self.process = Process("sushy-emulator", argv, self.workdir / "emulator.log").start()

        def listening():
            self.process.check()
            return port_in_use(self.port)

        wait_until(f"sushy-emulator on {self.url}", listening, timeout, interval=0.1)
        return self

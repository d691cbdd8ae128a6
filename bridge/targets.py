"""Per-host fencing targets: for each compute host, its fencing methods in order, and for each
where its BMC is and how to log in.

They come from the config's `fencing:` section: `methods` for every host without an entry of
its own (addresses may be patterns such as `https://{{ short }}-bmc.example`), `groups` that
share methods and credentials, `hosts` (a static map), and an inventory file the operator keeps
(`fencing.inventory`, the same shape as `hosts`; re-read when it changes). An Ironic method's
node (options.node) defaults to the host's Nova hypervisor (`{{ hypervisor_hostname }}`), which the caller
looks up in Nova. Secrets ({file:}/{env:}) are read when the targets are built and kept as
Secret; addresses are checked before any driver sees them.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import jinja2
import jinja2.meta
import jsonschema
import yaml

from bridge.config import ConfigError, read_secret, schema
from bridge.fencing.base import FenceTarget, Secret
from bridge.hostnames import check_host_name
from bridge.incidents import MANUAL, Method
from bridge.rules import TEMPLATES, compile_template, short

log = logging.getLogger(__name__)

# drivers that find proof in evidence (a person, an alert): no address, no credentials
PASSIVE = frozenset({MANUAL, "alert"})
# drivers that reach a BMC over the network: their address must be one
BMC = frozenset({"redfish", "ipmi", "fence_agent"})
NODE = "hypervisor_hostname"  # the host's Nova hypervisor, looked up only when a template names it
RESERVED = frozenset({"host", "short", NODE})
DEFAULT_TIMEOUT, DEFAULT_RETRIES = 30.0, 2  # for methods that switch power
CACHE_SECONDS = 60.0  # a built target is reused this long (the inventory file changing ends it)
_ADDRESS_HOST = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]")


class TargetError(ValueError):
    """No target can be built for this host and method; the message says why (no secret)."""


def known_drivers() -> list[str]:
    from bridge.fencing import POWER_DRIVERS

    return sorted(PASSIVE | set(POWER_DRIVERS))


@dataclass(frozen=True)
class _Spec:
    """One method of a host's list, as configured (templates not yet rendered)."""

    key: str  # where it is configured, for messages
    driver: str
    address: str | None
    username: str | None
    password: Secret | None
    options: Mapping[str, Any]
    timeout: float
    retries: int


@dataclass(frozen=True)
class _Entry:
    """A host's own entry, or a group: its methods and what they share."""

    methods: tuple[_Spec, ...] | None
    username: str | None = None
    password: Secret | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)
    group: str | None = None


def _secret(ref: dict | None, key: str, fencing: dict) -> Secret | None:
    if ref is None or fencing.get(_UNREAD):
        return None
    return Secret(read_secret(ref, key))


_UNREAD = "__secrets_unread__"  # check(): the structure only, no secret read


def _templates(value: Any, key: str) -> None:
    """Every string in value compiles as a template (ConfigError naming the key if not)."""
    if isinstance(value, str):
        try:
            compile_template(value)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"{key}: invalid template: {exc.message}") from None
    elif isinstance(value, dict):
        for name, item in value.items():
            _templates(item, f"{key}.{name}")


def _spec(raw: dict, key: str, fencing: dict) -> _Spec:
    driver = raw["driver"]
    if driver not in known_drivers():
        raise ConfigError(f"{key}.driver: unknown fencing driver {driver!r}; known: {', '.join(known_drivers())}")
    passive = driver in PASSIVE
    if driver in BMC and not raw.get("address"):
        raise ConfigError(f"{key}.address: required for driver {driver}")
    _templates(raw.get("address"), f"{key}.address")
    _templates(raw.get("options", {}), f"{key}.options")
    return _Spec(key, driver, raw.get("address"), raw.get("username"), _secret(raw.get("password"), f"{key}.password", fencing),
                 raw.get("options", {}), float(raw.get("timeout", fencing["timeout"] if passive else DEFAULT_TIMEOUT)),
                 int(raw.get("retries", 0 if passive else DEFAULT_RETRIES)))


def _entry(raw: dict, key: str, fencing: dict, groups: Mapping[str, _Entry]) -> _Entry:
    group = raw.get("group")
    if group is not None and group not in groups:
        raise ConfigError(f"{key}.group: no group {group!r} in fencing.groups")
    variables = dict(raw.get("vars", {}))
    clash = sorted(RESERVED & set(variables))
    if clash:
        raise ConfigError(f"{key}.vars.{clash[0]}: reserved name (host, short and {NODE} are set by the bridge)")
    methods = raw.get("methods")
    return _Entry(None if methods is None else tuple(_spec(m, f"{key}.methods[{i}]", fencing)
                                                    for i, m in enumerate(methods)),
                  raw.get("username"), _secret(raw.get("password"), f"{key}.password", fencing), variables, group)


def _inventory_schema() -> dict:
    defs = schema()["$defs"]
    return {"$defs": defs, "type": "object", "additionalProperties": False,
            "properties": {"hosts": {"type": "object", "additionalProperties": {"$ref": "#/$defs/fence_host"}}}}


def read_inventory(path: str, fencing: dict, groups: Mapping[str, _Entry]) -> dict[str, _Entry]:
    """The operator's inventory file: {hosts: {HOST: entry}}, validated like fencing.hosts."""
    try:
        raw = yaml.safe_load(open(path).read()) or {}
    except OSError as exc:
        raise ConfigError(f"fencing.inventory: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"fencing.inventory: {path} is not valid YAML: {exc}") from None
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(_inventory_schema()).iter_errors(raw))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        raise ConfigError(f"fencing.inventory: {path}: {where or 'top level'}: {error.message}")
    return {host: _entry(entry, f"{path}: hosts.{host}", fencing, groups)
            for host, entry in (raw.get("hosts") or {}).items()}


def address_problem(address: str, allow_loopback: bool) -> str | None:
    """None if address is a BMC's network address the bridge may call, else why not.
    Loopback, link-local and unspecified addresses are refused unless allowed (labs, tests)."""
    if "://" in address:
        parts = urlsplit(address)
        if parts.scheme not in ("http", "https"):
            return f"scheme {parts.scheme!r} is not http or https"
        name = parts.netloc.rpartition("@")[2]
        if "@" in parts.netloc:
            return "credentials belong in username/password, not in the address"
    else:
        name = address
    name = re.sub(r":[0-9]{1,5}$", "", name) if not name.endswith("]") else name
    if not _ADDRESS_HOST.fullmatch(name) or name.startswith(("-", ".")):
        return f"{name!r} is not a host name or IP address"
    name = name.strip("[]")
    if allow_loopback:
        return None
    try:
        found = {ipaddress.ip_address(name)}
    except ValueError:
        try:
            found = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in socket.getaddrinfo(name, None)}
        except (socket.gaierror, UnicodeError):
            return None  # unresolvable: the driver fails on it, visibly; nothing to refuse here
    for ip in found:
        if ip.is_loopback or ip.is_link_local or ip.is_unspecified:
            return f"{name} is {ip} (loopback, link-local or unspecified; set fencing.allow_loopback for labs)"
    return None


@functools.lru_cache(maxsize=1024)
def _names_node(source: str) -> bool:
    return NODE in jinja2.meta.find_undeclared_variables(TEMPLATES.parse(source))


def check(fencing: dict) -> None:
    """What the config alone can show (drivers known, templates, groups), reading no secret and
    no inventory file: config.validate() runs it; building Targets reads the rest."""
    Targets({**fencing, _UNREAD: True, "inventory": None})


class Targets:
    """Which methods fence a host, and the FenceTarget for each."""

    def __init__(self, fencing: dict, *, node_of: Callable[[str], str | None] | None = None):
        self.fencing = fencing
        self.allow_loopback = bool(fencing.get("allow_loopback", False))
        self.node_of = node_of  # host -> its Nova hypervisor's name (Ironic node); None: none known
        self.groups = {name: _entry(raw, f"fencing.groups.{name}", fencing, {})
                       for name, raw in fencing.get("groups", {}).items()}
        for name, group in self.groups.items():
            if group.methods is None:
                raise ConfigError(f"fencing.groups.{name}.methods: required")
        self.default = tuple(_spec(m, f"fencing.methods[{i}]", fencing) for i, m in enumerate(fencing["methods"]))
        self.hosts = {host: _entry(raw, f"fencing.hosts.{host}", fencing, self.groups)
                      for host, raw in fencing.get("hosts", {}).items()}
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, int], tuple[float, dict, FenceTarget]] = {}
        self._inventory: dict[str, _Entry] = {}
        self._inventory_mtime: float | None = None
        if fencing.get("inventory"):
            self._inventory = read_inventory(fencing["inventory"], fencing, self.groups)
            self._inventory_mtime = os.stat(fencing["inventory"]).st_mtime

    # ---- which entry, which methods -------------------------------------------------------

    def _current_inventory(self) -> dict[str, _Entry]:
        path = self.fencing.get("inventory")
        if not path:
            return self._inventory
        with self._lock:
            try:
                mtime = os.stat(path).st_mtime
            except OSError as exc:
                log.error("fencing inventory %s: %s; keeping the hosts read before", path, exc.strerror)
                return self._inventory
            if mtime != self._inventory_mtime:
                try:
                    self._inventory = read_inventory(path, self.fencing, self.groups)
                    log.info("fencing inventory %s re-read: %d hosts", path, len(self._inventory))
                except ConfigError as exc:
                    log.error("%s; keeping the hosts read before", exc)
                self._inventory_mtime = mtime
            return self._inventory

    def _entry(self, host: str) -> _Entry | None:
        for table in (self.hosts, self._current_inventory()):
            if host in table:
                return table[host]
            if short(host) in table:  # the config may name hosts short, Nova by FQDN
                return table[short(host)]
        return None

    def _specs(self, host: str) -> tuple[tuple[_Spec, ...], _Entry | None, _Entry | None]:
        entry = self._entry(host)
        group = self.groups.get(entry.group) if entry and entry.group else None
        specs = (entry and entry.methods) or (group and group.methods) or self.default
        return specs, entry, group

    def problems(self) -> list[str]:
        """What would fail whatever the host, named by key: a fence agent that is not installed."""
        from bridge.fencing.fence_agent import AGENT_NAME, SEARCH_PATH

        entries = [*self.groups.values(), *self.hosts.values(), *self._current_inventory().values()]
        specs = [*self.default, *(s for e in entries for s in e.methods or ())]
        out = []
        for spec in (s for s in specs if s.driver == "fence_agent"):
            agent = str(spec.options.get("agent", ""))
            if not AGENT_NAME.fullmatch(agent):
                out.append(f"{spec.key}.options.agent: must name a fence agent (fence_...), not {agent!r}")
            elif not shutil.which(agent, path=SEARCH_PATH):
                out.append(f"{spec.key}.options.agent: {agent} is not installed (looked in PATH and /usr/sbin)")
        return out

    def own_hosts(self) -> int:
        """How many hosts have an entry of their own (config and inventory file)."""
        return len(set(self.hosts) | set(self._current_inventory()))

    def plan(self, host: str) -> tuple[Method, ...]:
        """The host's methods, in order, as decide() needs them."""
        return tuple(Method(s.driver, s.timeout, s.retries) for s in self._specs(host)[0])

    # ---- targets --------------------------------------------------------------------------

    def target(self, host: str, index: int) -> FenceTarget:
        """The host's method number `index` as a FenceTarget; TargetError says why there is none.
        Kept CACHE_SECONDS: every read-back asks, and a target may need DNS or a Nova read."""
        inventory = self._current_inventory()
        now = time.monotonic()
        cached = self._cache.get((host, index))
        if cached is not None and now - cached[0] < CACHE_SECONDS and cached[1] is inventory:
            return cached[2]
        target = self._build(host, index)
        self._cache[(host, index)] = (now, inventory, target)
        return target

    def _build(self, host: str, index: int) -> FenceTarget:
        if check_host_name(host) is not None:  # never render a name that could not be Nova's
            raise TargetError(f"{host!r}: {check_host_name(host)}")
        specs, entry, group = self._specs(host)
        if not 0 <= index < len(specs):
            raise TargetError(f"{host} has no fencing method {index + 1}")
        spec = specs[index]
        context: dict[str, Any] = {**(group.vars if group else {}), **(entry.vars if entry else {}),
                                   "host": host, "short": short(host)}
        address = self._render(spec.address, context, host, f"{spec.key}.address")
        raw_options = dict(spec.options)
        if spec.driver == "ironic":  # the node is the host's Nova hypervisor unless configured
            raw_options.setdefault("node", "{{ %s }}" % NODE)
        options = {name: self._render(value, context, host, f"{spec.key}.options.{name}")
                   if isinstance(value, str) else value for name, value in raw_options.items()}
        if spec.driver in BMC:
            problem = address_problem(address, self.allow_loopback)
            if problem is not None:
                raise TargetError(f"{spec.key}.address for {host}: {problem}")
        layers = [layer for layer in (entry, spec, group) if layer is not None]  # the host's own wins
        return FenceTarget(host=host, method=spec.driver, address=address,
                           username=next((x.username for x in layers if x.username), None),
                           password=next((x.password for x in layers if x.password), None),
                           options=options, timeout=spec.timeout, retries=spec.retries)

    def targets(self, host: str) -> list[FenceTarget | TargetError]:
        """Every method of the host, in order: its target, or why there is none."""
        out: list[FenceTarget | TargetError] = []
        for index in range(len(self._specs(host)[0])):
            try:
                out.append(self.target(host, index))
            except TargetError as exc:
                out.append(exc)
        return out

    def _render(self, source: str | None, context: dict, host: str, key: str) -> str | None:
        if source is None:
            return None
        template = compile_template(source)
        if _names_node(source):
            node = self.node_of(host) if self.node_of else None
            if not node:
                raise TargetError(f"{key}: no Nova hypervisor known for {host} (an Ironic node is found through it)")
            context = {**context, NODE: node}
        try:
            text = template.render(**context).strip()
        except jinja2.TemplateError as exc:
            raise TargetError(f"{key} for {host}: {exc}") from None
        if not text:
            raise TargetError(f"{key} for {host}: rendered empty")
        return text

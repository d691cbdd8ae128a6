"""Per-host fencing targets: static map, patterns, groups, inventory file, Ironic nodes, secrets,
and the BMC address rules."""

import os

import pytest
import yaml

from bridge.config import ConfigError, validate
from bridge.fencing import POWER_DRIVERS
from bridge.incidents import Method
from bridge.targets import TargetError, Targets, address_problem


@pytest.fixture(autouse=True)
def power_drivers(monkeypatch):
    """Driver names the config may use, whatever drivers this checkout has."""
    for name in ("redfish", "ipmi", "fence_agent", "ironic"):
        monkeypatch.setitem(POWER_DRIVERS, name, object)


def targets(fencing: dict, **kw) -> Targets:
    return Targets(validate({"fencing": fencing})["fencing"], **kw)


def secret_file(tmp_path, name="bmc.pass", value="s3cret-pw"):
    path = tmp_path / name
    path.write_text(value + "\n")
    return {"file": str(path)}


def test_the_default_is_manual_only_with_the_fencing_timeout():
    t = targets({})
    assert t.plan("compute-01") == (Method("manual", 300.0, 0),)
    [target] = t.targets("compute-01")
    assert target.method == "manual" and target.address is None and target.password is None


def test_a_pattern_renders_the_address_for_every_host(tmp_path):
    t = targets({"methods": [
        {"driver": "redfish", "address": "https://{{ short }}-bmc.example:8443", "username": "root",
         "password": secret_file(tmp_path), "options": {"system_id": "{{ short }}"}, "timeout": 20, "retries": 1},
        {"driver": "manual"}]})
    assert t.plan("compute-07.example.org") == (Method("redfish", 20.0, 1), Method("manual", 300.0, 0))
    target = t.target("compute-07.example.org", 0)
    assert target.address == "https://compute-07-bmc.example:8443" and target.options == {"system_id": "compute-07"}
    assert target.password.reveal() == "s3cret-pw" and "s3cret" not in repr(target) + str(target.public())
    assert target.public() == {"host": "compute-07.example.org", "method": "redfish",
                               "address": "https://compute-07-bmc.example:8443", "username": "root",
                               "options": {"system_id": "compute-07"}}


def test_groups_share_methods_and_credentials_and_the_host_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("RACK_A_PW", "group-pw")
    t = targets({
        "groups": {"rack-a": {"username": "admin", "password": {"env": "RACK_A_PW"}, "vars": {"site": "a"},
                              "methods": [{"driver": "ipmi", "address": "{{ bmc }}:623"},
                                          {"driver": "fence_agent", "address": "{{ short }}.{{ site }}.bmc",
                                           "username": "agent", "options": {"agent": "fence_ipmilan"}}]}},
        "hosts": {"compute-01": {"group": "rack-a", "vars": {"bmc": "10.1.0.1"}},
                  "compute-02": {"group": "rack-a", "vars": {"bmc": "10.1.0.2"}, "username": "own",
                                 "password": secret_file(tmp_path, value="host-pw")},
                  "compute-03": {"methods": [{"driver": "redfish", "address": "https://10.1.0.3"}]}},
    })
    one, agent = t.targets("compute-01")
    assert (one.address, one.username, one.password.reveal()) == ("10.1.0.1:623", "admin", "group-pw")
    assert (agent.address, agent.username, agent.password.reveal()) == ("compute-01.a.bmc", "agent", "group-pw")
    two, agent = t.targets("compute-02.example.org")  # short-name entry, as the config may spell it
    assert (two.username, two.password.reveal(), agent.username) == ("own", "host-pw", "own")
    [three] = t.targets("compute-03")
    assert three.method == "redfish" and three.password is None
    assert t.plan("compute-04") == (Method("manual", 300.0, 0),)  # no entry: fencing.methods


def test_the_inventory_file_is_read_and_re_read_when_it_changes(tmp_path, caplog):
    inventory = tmp_path / "bmc.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": {"compute-01": {"methods": [
        {"driver": "redfish", "address": "https://10.2.0.1"}]}}}))
    t = targets({"inventory": str(inventory)})
    assert [m.name for m in t.plan("compute-01")] == ["redfish"]
    inventory.write_text(yaml.safe_dump({"hosts": {"compute-01": {"methods": [
        {"driver": "ipmi", "address": "10.2.0.9"}]}}}))
    os.utime(inventory, (1, 1))
    assert t.target("compute-01", 0).address == "10.2.0.9"
    inventory.write_text("hosts: {compute-01: {methods: [{driver: nosuch}]}}")
    os.utime(inventory, (2, 2))
    assert t.target("compute-01", 0).address == "10.2.0.9"  # a bad edit keeps what was read before
    assert "unknown fencing driver 'nosuch'" in caplog.text


def test_an_ironic_node_is_found_through_the_hosts_nova_hypervisor():
    asked = []

    def node_of(host):
        asked.append(host)
        return {"compute-01": "node-uuid-1"}.get(host)

    t = targets({"methods": [{"driver": "ironic", "options": {"cloud": "undercloud"}}]}, node_of=node_of)
    target = t.target("compute-01", 0)
    assert target.options == {"cloud": "undercloud", "node": "node-uuid-1"} and asked == ["compute-01"]
    with pytest.raises(TargetError, match="no Nova hypervisor known for compute-02"):
        t.target("compute-02", 0)
    # a node named in the config needs no Nova read
    assert targets({"methods": [{"driver": "ironic", "options": {"node": "n-{{ short }}"}}]},
                   node_of=node_of).target("compute-09", 0).options["node"] == "n-compute-09"
    assert asked == ["compute-01", "compute-02"]


@pytest.mark.parametrize("fencing, message", [
    ({"methods": [{"driver": "redfsh", "address": "x"}]}, "fencing.methods[0].driver: unknown fencing driver 'redfsh'"),
    ({"methods": [{"driver": "redfish"}]}, "fencing.methods[0].address: required for driver redfish"),
    ({"methods": [{"driver": "redfish", "address": "{{ host"}]}, "fencing.methods[0].address: invalid template"),
    ({"hosts": {"c1": {"group": "nope"}}}, "fencing.hosts.c1.group: no group 'nope'"),
    ({"hosts": {"c1": {"vars": {"host": "x"}}}}, "fencing.hosts.c1.vars.host: reserved name"),
    ({"methods": [{"driver": "ipmi", "address": "x", "password": "inline"}]}, "never inline"),
    ({"methods": []}, "fencing.methods"),
])
def test_config_errors_name_the_key(fencing, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        validate({"fencing": fencing})


def test_an_unreadable_secret_names_the_key_and_the_reason(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_BMC_PW", raising=False)
    fencing = {"groups": {"g": {"methods": [{"driver": "ipmi", "address": "10.0.0.1",
                                             "password": {"file": str(tmp_path / "missing")}}]}}}
    validate({"fencing": fencing})  # the config alone reads no secret
    with pytest.raises(ConfigError, match=r"fencing\.groups\.g\.methods\[0\]\.password: cannot read secret file .*"
                                          r"No such file"):
        targets(fencing)
    with pytest.raises(ConfigError, match=r"fencing\.hosts\.c1\.password: environment variable NO_SUCH_BMC_PW"):
        targets({"hosts": {"c1": {"password": {"env": "NO_SUCH_BMC_PW"}}}})


@pytest.mark.parametrize("address", [
    "https://127.0.0.1", "127.0.0.2:623", "https://[::1]:8000", "[::1]", "169.254.0.7", "https://[fe80::1]/",
    "https://localhost:8000", "0.0.0.0",
])
def test_loopback_and_link_local_bmcs_are_refused_unless_allowed(address):
    assert "loopback, link-local" in address_problem(address, allow_loopback=False)
    assert address_problem(address, allow_loopback=True) is None


@pytest.mark.parametrize("address, why", [
    ("https://root:pw@10.0.0.1", "credentials belong in username/password"),
    ("file:///etc/passwd", "scheme 'file'"),
    ("-oProxyCommand=x", "not a host name"),
    ("10.0.0.1;reboot", "not a host name"),
])
def test_addresses_that_are_not_a_bmc_are_refused(address, why):
    assert why in address_problem(address, allow_loopback=True)


def test_a_rendered_address_is_checked_before_any_driver_sees_it():
    t = targets({"methods": [{"driver": "redfish", "address": "https://{{ bmc | default('127.0.0.1') }}"}],
                 "hosts": {"c2": {"vars": {"bmc": "10.3.0.2"}}}})
    with pytest.raises(TargetError, match="fencing.methods\\[0\\].address for c1: 127.0.0.1 is 127.0.0.1"):
        t.target("c1", 0)
    assert t.target("c2", 0).address == "https://10.3.0.2"
    with pytest.raises(TargetError, match="not allowed"):
        t.target("c1;reboot", 0)  # a name Nova could not have never reaches a template

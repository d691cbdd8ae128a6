"""The Helm chart, rendered and linted by Helm's own library (helm-python-sdk: Helm's Go SDK
through its C ABI, no helm binary), every manifest checked against the Kubernetes schemas
(kubernetes-validate), invalid values refused by values.schema.json."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.chart


def helm():
    """Helm's library, imported when a chart test runs: plain pytest collects this file without
    the chart extra; the chart suite without it fails (never skips)."""
    import helm_python

    return helm_python


CHART = Path(__file__).resolve().parents[1] / "helm" / "nova-hostdown-bridge"
KUBERNETES = "1.30.0"
POSTGRES = {"database": {"type": "postgresql", "postgresql": {
    "url": "postgresql://bridge@postgres.db.svc:5432/bridge", "passwordSecret": {"name": "bridge-db"}}}}

COMBINATIONS = {
    "sqlite, one replica": {},
    "postgresql, three replicas": {**POSTGRES, "replicaCount": 3, "podDisruptionBudget": {"enabled": True}},
    "service monitor": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "network policy": {"networkPolicy": {"enabled": True, "ingressFrom": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "egressTo": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}},
    "live, with a cloud, BMC secrets and TLS": {
        "dryRun": False, "nova": {"cloud": "prod"},
        "secrets": {"tokens": "t", "cloudsYaml": "clouds", "bmcCredentials": "bmc", "tls": "bridge-tls"},
        "auth": {"webhookSources": ["alertmanager", "zabbix"], "adminTokens": ["ops", "oncall"]}},
}

INVALID = {
    "sqlite with two replicas": ({"replicaCount": 2}, "/replicaCount': maximum: got 2, want 1"),
    "postgresql without a url": ({"database": {"type": "postgresql"}}, "url"),
    "a password in the url": ({"database": {"type": "postgresql", "postgresql": {
        "url": "postgresql://bridge:secret@db/bridge"}}}, "/database/postgresql/url': .* does not match"),
    "an unknown database": ({"database": {"type": "mysql"}}, "type"),
    "live without a cloud": ({"dryRun": False}, "/nova/cloud': minLength"),
    "an unknown source": ({"auth": {"webhookSources": ["splunk"]}}, "webhookSources"),
    "no tokens secret": ({"secrets": {"tokens": ""}}, "tokens"),
}


def render(values: dict) -> dict[str, list[dict]]:
    """{template: [manifest, ...]} as `helm template` renders them."""
    chart = helm().Chart.load(str(CHART))
    out = {}
    for path, text in chart.render(values, name="hdb", namespace="openstack", is_install=True).items():
        if path.endswith(".yaml"):
            out[Path(path).name] = [doc for doc in yaml.safe_load_all(text) if doc]
    return out


def by_kind(rendered: dict) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for docs in rendered.values():
        for doc in docs:
            kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


@pytest.mark.parametrize("values", COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_lints_renders_and_every_manifest_is_valid_kubernetes(values):
    import kubernetes_validate

    report = helm().lint(str(CHART), values, strict=True, kube_version=f"v{KUBERNETES}")
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []
    kinds = by_kind(render(values))
    for kind, docs in kinds.items():
        if kind == "ServiceMonitor":  # a CRD: not in Kubernetes's own schemas
            continue
        for doc in docs:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    assert set(kinds) >= {"Deployment", "Service", "ConfigMap", "ServiceAccount"}


@pytest.mark.parametrize("values,field", INVALID.values(), ids=INVALID.keys())
def test_invalid_values_are_refused_by_the_schema(values, field):
    with pytest.raises(helm().HelmError, match=f"values don't meet the specifications(.|\n)*{field}"):
        render(values)


def pod(kinds) -> dict:
    [deployment] = kinds["Deployment"]
    return deployment["spec"]["template"]["spec"]


def test_sqlite_runs_one_replica_on_a_volume_and_migrates_at_start():
    kinds = by_kind(render({}))
    [deployment] = kinds["Deployment"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    assert "PersistentVolumeClaim" in kinds and "Job" not in kinds
    mounts = {m["mountPath"]: m for m in pod(kinds)["containers"][0]["volumeMounts"]}
    assert "/var/lib/hostdown-bridge" in mounts


def test_postgresql_replicas_migrate_once_per_release_in_a_hook_before_the_deployment():
    kinds = by_kind(render({**POSTGRES, "replicaCount": 3}))
    [job] = kinds["Job"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["db", "upgrade"]
    hook_config = [c for c in kinds["ConfigMap"] if "helm.sh/hook" in c["metadata"].get("annotations", {})]
    assert int(hook_config[0]["metadata"]["annotations"]["helm.sh/hook-weight"]) < \
        int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert "PersistentVolumeClaim" not in kinds
    env = {e["name"]: e for e in pod(kinds)["containers"][0]["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "bridge-db", "key": "password"}


def test_the_pod_runs_non_root_on_a_read_only_root_with_probes_and_bounded_shutdown():
    spec = pod(by_kind(render({})))
    [container] = spec["containers"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}} in spec["volumes"]
    config = yaml.safe_load(next(iter(by_kind(render({}))["ConfigMap"]))["data"]["bridge.yaml"])
    assert spec["terminationGracePeriodSeconds"] > config["server"]["graceful_timeout"]


def test_the_config_the_chart_writes_is_one_the_bridge_accepts():
    from bridge.config import validate

    for values in COMBINATIONS.values():
        [configmap] = [c for c in by_kind(render(values))["ConfigMap"] if "helm.sh/hook" not in
                       c["metadata"].get("annotations", {})]
        validate(yaml.safe_load(configmap["data"]["bridge.yaml"]))

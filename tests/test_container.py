"""The image's entrypoint, run the way the chart runs it, without a container engine: the
chart's user, its args and environment, a read-only root filesystem, and only the chart's
volumes writable (emptyDir /tmp, the SQLite PVC) or present (config and secrets at its mount
paths). A mount namespace (unshare, as root) stands in for the container. It must come up
ready and take an alert."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest
import requests
import yaml

from bridge import incidents as sm
from tests.conftest import sample
from tests.harness.bridge_process import ADMIN_TOKEN, WEBHOOK_TOKEN
from tests.harness.procs import Process, free_port, wait_until
from tests.test_chart import by_kind, render

pytestmark = pytest.mark.chart

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_the_dockerfile_builds_a_wheel_and_runs_it_as_the_charts_non_root_user():
    chart_user = render({})["deployment.yaml"][0]["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    final = DOCKERFILE.split("\nFROM ")[-1]  # the runtime stage
    assert final.startswith("python:3") and "-slim" in final.splitlines()[0]
    assert f"USER {chart_user}:" in final and "USER root" not in final
    assert "pip wheel" in DOCKERFILE and "--no-index --find-links /wheels nova-hostdown-bridge" in final
    assert 'ENTRYPOINT ["hostdown-bridge"]' in final
    assert 'VOLUME ["/var/lib/hostdown-bridge", "/tmp"]' in final
    default_image = render({})["deployment.yaml"][0]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert default_image == "nova-hostdown-bridge:0.1.0"  # `docker build -t` in the Dockerfile's header
    assert "docker build -t nova-hostdown-bridge:0.1.0 ." in DOCKERFILE


def mount_script(pod: dict, volumes: dict[str, Path], argv: list[str], env: dict, uid: int, gid: int,
                 image: tuple[Path, ...] = ()) -> str:
    """Shell for `unshare --mount`: the pod's mounts over a read-only root, then the entrypoint as uid.
    `image`: this machine's Python and checkout, which the image would hold; kept visible even when
    they lie under a path the pod mounts an emptyDir on (a checkout under /tmp)."""
    sources = {v["name"]: v for v in pod["volumes"]}
    lines = ["set -e", "mount --make-rprivate /", "mount --rbind / /mnt"]
    # overlays, not the host's directories: the mount points the host lacks (/etc, /var/lib), and
    # a way through /root (0700) to this machine's Python, as the image's own would be
    for top, mode in (("/etc", 0o755), ("/var/lib", 0o755), ("/root", 0o711)):
        upper, work = volumes["overlay"] / top.strip("/") / "upper", volumes["overlay"] / top.strip("/") / "work"
        upper.mkdir(parents=True)
        work.mkdir(parents=True)
        upper.chmod(mode)
        lines.append(f"mount -t overlay overlay -o lowerdir={top},upperdir={upper},workdir={work} {top}")
    tmpfs = []
    for mount in pod["containers"][0]["volumeMounts"]:
        path, source = mount["mountPath"], sources[mount["name"]]
        if "emptyDir" in source:
            tmpfs.append(f"mount -t tmpfs -o mode=1777,size=256m tmpfs {path}")
            continue
        lines += [f"mkdir -p {path}", f"mount --bind {volumes[mount['name']]} {path}"]
        if mount.get("readOnly"):
            lines.append(f"mount -o remount,bind,ro {path}")
    hidden = [p for p in image for m in pod["containers"][0]["volumeMounts"]
              if "emptyDir" in sources[m["name"]] and p.is_relative_to(m["mountPath"])]
    shown = [f"mkdir -p {p} && mount --rbind /mnt{p} {p}" for p in hidden]
    lines += ["mount -o remount,ro /etc", "mount -o remount,ro /var/lib", "mount -o remount,ro /root", *tmpfs, *shown,
              "mount -o remount,bind,ro /",
              "cd /var/lib/hostdown-bridge",  # the image's WORKDIR
              "exec setpriv --reuid {0} --regid {1} --clear-groups --inh-caps=-all env -i {2} {3}".format(
                  uid, gid, " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()), shlex.join(argv))]
    return "\n".join(lines)


def reach_for_others(program: Path) -> None:
    """The chart's user runs this checkout's interpreter: a checkout directory it cannot pass
    (mktemp -d makes 0700) is opened for passing only (o+x, no listing); one outside is named."""
    for parent in program.parents:
        mode = parent.stat().st_mode
        if mode & 0o001:
            continue
        assert parent == ROOT or ROOT in parent.parents, \
            f"{parent} (mode {mode & 0o777:o}) stops the chart's user from reaching {program}"
        parent.chmod(mode | 0o001)


def test_the_entrypoint_comes_up_ready_as_the_chart_runs_it(tmp_path):
    assert os.geteuid() == 0, "the chart suite runs as root (make test): unshare and setpriv need it"
    kinds = by_kind(render({}))
    [deployment] = kinds["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    [configmap] = kinds["ConfigMap"]
    uid, gid = pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]

    volumes = {name: tmp_path / name for name in ("config", "tokens", "data", "overlay")}
    for path in volumes.values():
        path.mkdir()
    (volumes["config"] / "bridge.yaml").write_text(configmap["data"]["bridge.yaml"])
    config = yaml.safe_load(configmap["data"]["bridge.yaml"])
    for source, ref in config["auth"]["webhook_tokens"].items():
        (volumes["tokens"] / Path(ref["file"]).name).write_text(WEBHOOK_TOKEN)
    for admin in config["auth"]["admin_tokens"]:
        (volumes["tokens"] / Path(admin["token"]["file"]).name).write_text(ADMIN_TOKEN)
    # the kubelet's modes: secrets 0440 to fsGroup, the PVC owned by fsGroup
    for token in volumes["tokens"].iterdir():
        os.chown(token, 0, pod["securityContext"]["fsGroup"])
        token.chmod(0o440)
    os.chown(volumes["data"], uid, pod["securityContext"]["fsGroup"])
    for path in (tmp_path, *volumes.values()):
        path.chmod(0o755 if path != volumes["data"] else 0o770)
    tmp_path.parent.chmod(0o755)  # so the overlay's lower layers resolve for the user (pytest's own dir)
    reach_for_others(Path(sys.executable))

    port = free_port()
    # `hostdown-bridge ARGS` is `python -m bridge ARGS`, with this checkout's code on the path
    argv = [sys.executable, "-m", "bridge", *container["args"], "--bind", f"127.0.0.1:{port}"]
    env = {e["name"]: e["value"] for e in container["env"]}
    env.update(PATH="/usr/bin:/bin", PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")  # the image's ENV
    script = mount_script(pod, volumes, argv, env, uid, gid, (Path(sys.prefix).resolve(), ROOT))
    bridge = Process("container", ["unshare", "--mount", "--fork", "sh", "-c", script], tmp_path / "bridge.log")
    bridge.start()
    try:
        bridge.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        url = f"http://127.0.0.1:{port}"
        posted = requests.post(f"{url}/v1/alerts/alertmanager", data=sample("webhook_firing_api_v2.json"),
                               headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}",
                                        "Content-Type": "application/json"}, timeout=10)
        assert posted.status_code == 202, posted.text

        def fencing():
            found = requests.get(f"{url}/v1/incidents", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                                 timeout=10).json()["incidents"]
            return found and found[0]["state"] == sm.FENCING

        wait_until("the incident, fencing", fencing, 30)
        metrics = requests.get(f"{url}/metrics", timeout=10).text
        assert 'hostdown_bridge_signals_received_total{source="alertmanager",status="firing"} 1.0' in metrics
    finally:
        bridge.stop()
    log = bridge.log(20000)
    assert "Read-only file system" not in log and "Permission denied" not in log, log
    assert (volumes["data"] / "bridge.sqlite").stat().st_uid == uid  # written by the chart's user, on its PVC

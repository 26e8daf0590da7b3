"""shell/kubernetes/sidecar.yaml: valid for the Kubernetes versions it names, a native sidecar, Pod Security
"restricted" for both containers, every variable documented, and arguments that put no secret into the logs.

Schemas: kubernetes-validate (the test extra), which carries the OpenAPI schemas of each Kubernetes version, so the
validation runs offline. The "restricted" rules are the Pod Security Standards' own list, checked field by field.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from conftest import http
from dotenv import dotenv_values

from vertex_env.emulator import TOKEN_PREFIX, EmulatorServer
from vertex_env.proxy.serving import READY_TIMEOUT

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "shell" / "kubernetes" / "sidecar.yaml"
# From the first version with native sidecars on by default (1.29, beta; GA in 1.33) to the newest schema shipped.
KUBERNETES_VERSIONS = [f"1.{minor}" for minor in range(29, 38)]


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]


def deployment() -> dict[str, Any]:
    (found,) = [d for d in documents() if d.get("kind") == "Deployment"]
    return found


def pod_of(resource: dict[str, Any]) -> dict[str, Any]:
    return resource["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def sidecar_and_app(pod: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    (sidecar,) = [c for c in pod.get("initContainers", []) if c["name"] == "vertex-env"]
    (app,) = [c for c in pod["containers"] if c["name"] == "app"]
    return sidecar, app


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


# -- schema -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_manifest_is_valid_for_each_kubernetes_version_strictly(version: str) -> None:
    for resource in documents():
        # strict: a field the API does not know (a typo, a field of another version) is an error, not ignored.
        kubernetes_validate.validate(resource, version, strict=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    "break_it",
    [
        lambda pod: pod["initContainers"][0].update(restartpolicy="Always"),  # a typo
        lambda pod: pod["initContainers"][0]["startupProbe"].update(timeoutSeconds="6s"),
        lambda pod: pod["containers"][0].pop("name"),
    ],
    ids=["unknown-field", "wrong-type", "missing-name"],
)
def test_the_validation_refuses_a_broken_manifest(break_it: Any) -> None:
    broken = copy.deepcopy(deployment())
    break_it(pod_of(broken))
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


# -- Pod Security "restricted" -------------------------------------------------------------------------------------

_RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What a pod does against the Pod Security Standards' "restricted" profile (baseline's rules included where a
    manifest like this one could break them); empty when it passes."""
    found: list[str] = []
    pod_security = pod.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            found.append(f"pod: {flag}")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']}: {sorted(kinds)}")
    if pod_security.get("runAsUser") == 0:
        found.append("pod: runAsUser 0")
    containers = pod.get("initContainers", []) + pod["containers"]
    for container in containers:
        name = container["name"]
        security = container.get("securityContext", {})
        if security.get("privileged"):
            found.append(f"{name}: privileged")
        if security.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation must be false")
        capabilities = security.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            found.append(f"{name}: capabilities must drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds capabilities {capabilities['add']}")
        if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is not True:
            found.append(f"{name}: runAsNonRoot must be true")
        if security.get("runAsUser") == 0:
            found.append(f"{name}: runAsUser 0")
        seccomp = security.get("seccompProfile", pod_security.get("seccompProfile", {}))
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        for port in container.get("ports", []):
            if port.get("hostPort"):
                found.append(f"{name}: hostPort")
    return found


def test_both_containers_meet_pod_security_restricted() -> None:
    assert restricted_violations(pod_of(deployment())) == []


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda p: p["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"), "app: allowPrivilegeEscalation"),
        (lambda p: p["containers"][0]["securityContext"].pop("capabilities"), "app: capabilities"),
        (lambda p: p["initContainers"][0]["securityContext"].pop("seccompProfile") and p["securityContext"].pop("seccompProfile"), "vertex-env: seccompProfile"),
        (lambda p: p["containers"][0]["securityContext"].pop("runAsNonRoot"), "app: runAsNonRoot"),
        (lambda p: p["initContainers"][0]["securityContext"].update(runAsUser=0), "vertex-env: runAsUser 0"),
        (lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "volume h"),
    ],
    ids=["escalation", "capabilities", "seccomp", "non-root", "root-user", "host-path"],
)  # fmt: skip
def test_the_restricted_check_finds_each_kind_of_violation(break_it: Any, expected: str) -> None:
    pod = copy.deepcopy(pod_of(deployment()))
    break_it(pod)
    assert [v for v in restricted_violations(pod) if v.startswith(expected)], restricted_violations(
        pod
    )


def test_the_app_keeps_its_own_user() -> None:
    """Only the sidecar names a user; the pod gives its containers a group for the key file, never a user."""
    pod = pod_of(deployment())
    sidecar, app = sidecar_and_app(pod)
    for where in (pod["securityContext"], app.get("securityContext", {})):
        assert "runAsUser" not in where and "runAsGroup" not in where
    assert sidecar["securityContext"]["runAsUser"] == 10001  # the image's USER


# -- the sidecar -------------------------------------------------------------------------------------------------


def test_a_native_sidecar_that_the_app_waits_for_with_a_probe_longer_than_readyz() -> None:
    pod = pod_of(deployment())
    sidecar, _ = sidecar_and_app(pod)
    assert sidecar["restartPolicy"] == "Always"  # native: starts before the app, stops after it
    for probe in ("startupProbe", "readinessProbe"):
        assert sidecar[probe]["httpGet"]["path"] == "/readyz"
        assert (
            sidecar[probe]["timeoutSeconds"] > READY_TIMEOUT
        )  # /readyz may wait this long for a mint
    startup = sidecar["startupProbe"]
    assert (
        startup["periodSeconds"] * startup["failureThreshold"] >= 60
    )  # a minute for the first token


def test_the_manifest_probes_mounts_the_key_0400_and_drains_inside_the_grace() -> None:
    pod = pod_of(deployment())
    sidecar, app = sidecar_and_app(pod)
    args = sidecar["args"]

    ops_port = int(option(args, "--ops-listen").rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    for probe, path in (
        ("startupProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        http_get = sidecar[probe]["httpGet"]
        assert http_get["path"] == path
        assert ports.get(http_get["port"], http_get["port"]) == ops_port

    (key_volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert key_volume["secret"]["defaultMode"] == 0o400
    (mount,) = [m for m in sidecar["volumeMounts"] if m["name"] == key_volume["name"]]
    assert mount["readOnly"] is True
    assert option(args, "--key-file").startswith(mount["mountPath"] + "/")
    app_key = next(e for e in app["env"] if e["name"] == "OPENAI_API_KEY")
    assert app_key["valueFrom"]["secretKeyRef"]["name"] == key_volume["secret"]["secretName"]
    app_url = next(e for e in app["env"] if e["name"] == "OPENAI_BASE_URL")["value"]
    assert app_url.startswith(f"http://127.0.0.1:{option(args, '--port')}/v1/projects/")

    requests = sidecar["resources"]["requests"]
    assert requests["cpu"] and requests["memory"]
    assert pod["terminationGracePeriodSeconds"] > float(option(args, "--drain-timeout"))
    # The kubelet gives the 0400 secret to fsGroup as 0440: vertex-env accepts that form for its own group.
    assert pod["securityContext"]["fsGroup"] == sidecar["securityContext"]["runAsGroup"]


def test_every_variable_the_manifest_sets_is_documented() -> None:
    pod = pod_of(deployment())
    names = {e["name"] for c in pod["initContainers"] + pod["containers"] for e in c.get("env", [])}
    assert "VERTEX_ENV_CACHE_DIR" in names
    docs = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    text = "\n".join(p.read_text() for p in docs if p.exists())
    undocumented = sorted(n for n in names if not re.search(rf"`{n}[`=]", text))
    assert undocumented == []


@pytest.fixture
def volumes(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """Each of the sidecar's volume mounts as a folder: the secret holds a key file as the kubelet writes it."""
    pod = pod_of(deployment())
    sidecar, _ = sidecar_and_app(pod)
    by_name = {v["name"]: v for v in pod["volumes"]}
    mounts: dict[str, Path] = {}
    for mount in sidecar["volumeMounts"]:
        folder = tmp_path / "volumes" / mount["name"]
        folder.mkdir(parents=True)
        folder.chmod(0o700)
        secret = by_name[mount["name"]].get("secret")
        if secret is not None:
            key = folder / "key"
            key.write_text("k" * 43 + "\n")
            key.chmod(secret["defaultMode"])
        mounts[mount["mountPath"]] = folder
    yield mounts


@pytest.mark.slow
def test_the_sidecar_as_the_manifest_starts_it_logs_no_secret_and_uses_its_cache_dir(
    emu: EmulatorServer, volumes: dict[str, Path]
) -> None:
    """`serve` with the manifest's own args and env (mount paths moved to folders, ports to free ones): stdout
    and stderr, the container's logs, hold no key and no token; the key goes to --write-env; the cache to
    VERTEX_ENV_CACHE_DIR."""
    sidecar, _ = sidecar_and_app(pod_of(deployment()))

    def moved(value: str) -> str:
        for mount_path, folder in volumes.items():
            value = value.replace(mount_path, str(folder))
        return value

    args = [moved(a) for a in sidecar["args"]]
    args[args.index("--port") + 1] = "0"
    args[args.index("--ops-listen") + 1] = "127.0.0.1:0"
    env = {**os.environ, **{e["name"]: moved(e["value"]) for e in sidecar["env"]}}
    process = subprocess.Popen(
        [sys.executable, "-m", "vertex_env", "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(line)
            if json.loads(line)["event"] == "listening":
                break
        ops_port = json.loads(lines[-1])["ops_port"]
        status, _, _ = http(f"http://127.0.0.1:{ops_port}/readyz")
        assert status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    logs = stdout + "".join(lines) + stderr
    assert stdout == ""
    assert "k" * 43 not in logs
    assert TOKEN_PREFIX not in logs

    written = Path(moved(option(sidecar["args"], "--write-env")))
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert dotenv_values(written)["OPENAI_API_KEY"] == "k" * 43
    cache = Path(env["VERTEX_ENV_CACHE_DIR"])
    assert cache.is_dir() and any(
        cache.iterdir()
    )  # the token went to the tmpfs named by the variable

"""The sidecar image (shell/kubernetes/Dockerfile), built without Docker: its stages, step by step, into folders.

There is no Docker engine here. The build context is made the way the Docker SDK for Python makes it (its own
.dockerignore reader and tar), from a copy of this checkout into which the test first puts what a working folder
really holds after the README's commands: a live `.env`, the proxy key, a service-account key, a .venv, a .git and
build output. Each stage is a folder standing for its root filesystem; its RUN commands run in `sh` with the
Dockerfile's absolute paths moved under that folder, `COPY --from` copies between them, and the builder's folder is
thrown away as Docker throws the stage away. What is left is the final image's own layer: it must hold none of those
secrets, no source tree, and a `vertex-env` that starts as the image's ENTRYPOINT and CMD say and passes the image's
own HEALTHCHECK.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import http
from docker.utils.build import tar as docker_context_tar
from prometheus_client.parser import text_string_to_metric_families

from vertex_env import __version__
from vertex_env.emulator import EmulatorServer

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "shell" / "kubernetes" / "Dockerfile"

# One marker in every planted secret: found anywhere in the image, it is a leak, whatever the file is called.
MARKER = "planted-secret-7f3a9c"
PLANTED = {
    ".env": f"OPENAI_API_KEY='ya29.{MARKER}'\n",  # the README's `vertex-env write .env`
    "proxy.env": f"OPENAI_API_KEY='{MARKER}'\n",  # `serve --write-env proxy.env`
    "emu.env": f"VERTEX_ENV_EMULATOR_HOST=127.0.0.1:1 # {MARKER}\n",
    "sa-key.json": json.dumps({"type": "service_account", "private_key": MARKER}),
    "application_default_credentials.json": json.dumps({"refresh_token": MARKER}),
    "tls.key": MARKER,
    "id.pem": MARKER,
    ".venv/pyvenv.cfg": f"home = /{MARKER}\n",
    ".git/config": f"[remote]\n  token = {MARKER}\n",
    "build/lib/leftover.py": f"# {MARKER}\n",
    "dist/vertex_env-0.0.0.tar.gz": MARKER,
    # Inside the folders the wheel is built from: package data (`shell/**/*`) would carry these into the wheel.
    "shell/kubernetes/proxy.env": f"OPENAI_API_KEY='{MARKER}'\n",
    "shell/kubernetes/key": MARKER,
    "vertex_env/.env": f"OPENAI_API_KEY='{MARKER}'\n",
    "vertex_env/emulator/.env.local": MARKER,
}


# -- the Dockerfile, read as Docker reads it -------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    steps: list[tuple[str, str]] = field(default_factory=list)

    def all(self, kind: str) -> list[str]:
        return [rest for step, rest in self.steps if step == kind]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their instructions; global ARGs (before the first FROM) are substituted into FROM lines."""
    lines = [line.strip() for line in text.replace("\\\n", " ").splitlines()]
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        kind, rest = line.split(None, 1)
        kind = kind.upper()
        if kind == "ARG" and not stages:
            name, _, default = rest.partition("=")
            global_args[name] = default
        elif kind == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], rest)
            base, _, name = image.partition(" AS ")
            stages.append(Stage(name=name.strip() or str(len(stages)), base=base.strip()))
        else:
            stages[-1].steps.append((kind, rest))
    return stages


def key_values(rest: str) -> dict[str, str]:
    """`k=v k2="v 2"` (ENV, LABEL) as a dict."""
    return dict(token.split("=", 1) for token in shlex.split(rest))


# -- the build, stage by stage, into folders --------------------------------------------------------------------

# The base image's own folders: a RUN command's paths there stay as they are (the test machine stands for the base).
_BASE_FOLDERS = ("usr", "bin", "sbin", "lib", "etc", "dev", "proc", "tmp", "var", "home")
_CONTAINER_PATH = re.compile(
    r"(?<![\w.\-/])/(?!(?:" + "|".join(_BASE_FOLDERS) + r")(?:/|\b))[\w.\-/*]+"
)


def in_root(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def build_context(source: Path, dockerfile: str) -> Path:
    """The context tar as `docker build` sends it, made by the Docker SDK for Python from `source`."""
    ignore = source / ".dockerignore"
    # docker-py's own reading of .dockerignore (docker/api/build.py): stripped lines, no blanks, no comments.
    patterns = [
        line.strip()
        for line in ignore.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    archive = docker_context_tar(str(source), exclude=patterns, dockerfile=(dockerfile, None))
    context = source.parent / "context"
    context.mkdir()
    with tarfile.open(fileobj=archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(context, filter="data")
        else:  # pragma: no cover - Pythons before the extraction filters
            tar.extractall(context)  # our own archive, from our own files
    archive.close()
    return context


def moved_under(root: Path, text: str) -> str:
    """`text` with the container's own absolute paths (not the base image's) moved under `root`."""
    return _CONTAINER_PATH.sub(lambda m: str(in_root(root, m.group(0))), text)


def run_step(command: str, root: Path, env: dict[str, str]) -> None:
    moved = moved_under(root, command)
    result = subprocess.run(
        ["sh", "-c", moved], env=env, cwd=root, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"RUN {command}\n{result.stdout[-2000:]}{result.stderr[-3000:]}"


def local_package_indexes() -> list[str]:
    """The file:// package indexes pip is configured with: the image's install runs offline, from them only."""
    import pwd

    # pip's user configuration lives in the real home, which the isolation fixture has hidden.
    real_home = pwd.getpwuid(os.getuid()).pw_dir
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
        env={**env, "HOME": real_home},
    ).stdout
    return re.findall(r"file://\S+?(?=['\s]|$)", listed)


def offline_pip_env(tmp_path: Path) -> dict[str, str]:
    """pip from the local indexes only; skip (or fail in CI) without them, skip where they hold no wheels for
    this Python (they are made for the machine's default Python; the other tox Pythons install from the registry)."""
    indexes = local_package_indexes()
    if not indexes:
        message = (
            "no local (file://) package index configured for pip: the install must run offline"
        )
        if os.environ.get("VERTEX_ENV_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    env = {
        **os.environ,
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": indexes[0],
        "PIP_EXTRA_INDEX_URL": " ".join(indexes[1:]),
        "PIP_NO_CACHE_DIR": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    probe = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "aiohttp"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(
            f"the local package indexes hold no aiohttp wheel for Python "
            f"{sys.version_info.major}.{sys.version_info.minor}: this build runs offline only with the "
            "machine's default Python"
        )
    return env


def plant_a_used_working_folder(tmp_path: Path) -> Path:
    """A copy of this checkout as a user's folder looks after the README's commands: secrets, .venv, .git, build."""
    source = tmp_path / "checkout"
    shutil.copytree(
        REPO,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".tox", "*.egg-info", "build", "dist", "__pycache__", ".*_cache"
        ),
    )
    for relative, content in PLANTED.items():
        path = source / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return source


def files_under(root: Path) -> list[Path]:
    return [Path(folder) / name for folder, dirs, names in os.walk(root) for name in names + dirs]


# -- the tests ---------------------------------------------------------------------------------------------------


def test_the_image_is_two_stages_on_one_digest_pinned_base_with_labels_and_a_non_root_user() -> (
    None
):
    stages = parse_dockerfile(DOCKERFILE.read_text())
    builder, final = stages
    assert builder.name == "builder"
    assert builder.base == final.base
    assert re.fullmatch(r"python:3\.\d+-slim@sha256:[0-9a-f]{64}", final.base), final.base
    # The final stage takes nothing from the context: only the builder's venv.
    assert not [c for c in final.all("COPY") if not c.startswith("--from=builder ")]
    assert final.all("COPY") == ["--from=builder /opt/vertex-env /opt/vertex-env"]
    installs = [c for c in builder.all("RUN") if " install " in c]
    assert len(installs) == 1 and "[metrics,speed]" in installs[0] and ".whl" in installs[0]

    labels = key_values(" ".join(final.all("LABEL")))
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels["org.opencontainers.image.title"]
    user = final.all("USER")[-1].split(":")
    assert all(part.isdigit() and int(part) != 0 for part in user)
    (useradd,) = [c for c in final.all("RUN") if c.startswith("useradd ")]
    assert f"--uid {user[0]}" in useradd
    (healthcheck,) = final.all("HEALTHCHECK")
    assert "/healthz" in healthcheck


def test_dockerignore_keeps_secrets_venv_git_and_build_output_out_of_the_context(
    tmp_path: Path,
) -> None:
    source = plant_a_used_working_folder(tmp_path)
    context = build_context(source, "shell/kubernetes/Dockerfile")
    sent = {p.relative_to(context).as_posix() for p in files_under(context)}
    leaked = sorted(
        p for p in sent if p in PLANTED or p.split("/")[0] in {".venv", ".git", "build", "dist"}
    )
    assert leaked == []
    for path in files_under(context):
        if path.is_file() and not path.is_symlink():
            assert MARKER not in path.read_text(errors="replace"), path
    # What the wheel is built from did get through.
    assert {"pyproject.toml", "README.md", "LICENSE", "vertex_env/__init__.py"} <= sent
    assert "shell/kubernetes/sidecar.yaml" in sent
    assert (
        context / "vertex_env" / "shell"
    ).is_symlink()  # the package data link, as in the repository


@pytest.mark.slow
@pytest.mark.timeout(600)  # a pip install and a build: minutes on a loaded 2-core machine
def test_the_image_built_stage_by_stage_holds_no_secret_or_source_and_serves(
    emu: EmulatorServer, tmp_path: Path
) -> None:
    pip_env = offline_pip_env(tmp_path)
    stages = parse_dockerfile(DOCKERFILE.read_text())
    source = plant_a_used_working_folder(tmp_path)
    context = build_context(source, "shell/kubernetes/Dockerfile")

    # `python` in a RUN is the base image's interpreter: here, the one under this test's venv.
    base_bin = tmp_path / "base-bin"
    base_bin.mkdir()
    (base_bin / "python").symlink_to(os.path.realpath(sys.executable))
    root = tmp_path / "root"  # the running stage's `/`; one path for every stage, as in Docker
    finished: dict[str, Path] = {}
    for stage in stages:
        root.mkdir()
        stage_env: dict[str, str] = {}  # ENV does not cross stages
        env = {**pip_env, "PATH": f"{base_bin}:{os.environ['PATH']}"}
        for kind, rest in stage.steps:
            if kind == "ENV":
                values = key_values(rest)
                for name, value in values.items():
                    stage_env[name] = value
                    if name.startswith("PIP_"):
                        env[name] = value
            elif kind == "COPY":
                origin, target = rest.split()[-2:]
                if rest.startswith("--from="):
                    donor = finished[rest.split()[0].removeprefix("--from=")]
                    shutil.copytree(in_root(donor, origin), in_root(root, target), symlinks=True)
                else:
                    assert origin == "."
                    shutil.copytree(context, in_root(root, target), symlinks=True)
            elif kind == "RUN":
                if rest.startswith("useradd "):
                    continue  # checked by the test above; the base image stands in for /etc/passwd
                run_step(rest, root, env)
        finished[stage.name] = root.rename(tmp_path / f"stage-{stage.name}")
    image = finished[stages[-1].name]
    for done in finished.values():
        if done != image:
            shutil.rmtree(done)  # Docker keeps only the last stage
    image.rename(root)  # back at the path its venv was built for

    layer = [p.relative_to(root).as_posix() for p in files_under(root)]
    assert {p.split("/")[0] for p in layer} == {
        "opt"
    }  # nothing but the venv in the image's own layer
    names = {Path(p).name for p in layer}
    planted_names = {Path(p).name for p in PLANTED if "/" not in p} | {"key", ".git", ".venv"}
    assert not names & (planted_names | {"pyproject.toml", "MANIFEST.in", "tox.ini"})
    assert not [p for p in layer if p.endswith((".env", ".key", ".whl", ".tar.gz"))]
    ours = {f"tests/{p.name}" for p in (REPO / "tests").glob("test_*.py")} | {
        "bench/run.py",
        ".ci/run",
    }
    assert not [
        p for p in layer if p.endswith(tuple(ours))
    ]  # no copy of this repository's source tree
    for path in files_under(root):
        if path.is_file() and not path.is_symlink():
            assert MARKER.encode() not in path.read_bytes(), path
    venv = root / "opt" / "vertex-env"
    assert not (venv / "bin" / "pip").exists()  # nothing in the image installs packages
    extras = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import uvloop, prometheus_client"],
        capture_output=True,
        text=True,
    )
    assert extras.returncode == 0, extras.stderr  # the speed and metrics extras

    # ENTRYPOINT + CMD with the image's PATH; the ops port moved to a free one of this machine.
    entrypoint = json.loads(stages[-1].all("ENTRYPOINT")[0])
    cmd = json.loads(stages[-1].all("CMD")[0])
    assert entrypoint == ["vertex-env", "serve"]
    cmd[cmd.index("--ops-listen") + 1] = "127.0.0.1:0"
    cmd[cmd.index("--port") + 1] = "0"
    cmd[cmd.index("--write-env") + 1] = str(tmp_path / "proxy.env")
    image_path = moved_under(root, stage_env["PATH"]).replace("$PATH", os.environ["PATH"])
    env = {**os.environ, "PATH": image_path}
    assert shutil.which("vertex-env", path=env["PATH"]) == str(venv / "bin" / "vertex-env")
    process = subprocess.Popen(
        [*entrypoint, *cmd], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        listening: dict[str, Any] = {}
        for line in process.stderr:
            event = json.loads(line)
            if event["event"] == "listening":
                listening = event
                break
        assert listening["metrics"] is True
        ops_port = listening["ops_port"]
        healthcheck = stages[-1].all("HEALTHCHECK")[0]
        executable, *arguments = json.loads(healthcheck.split(" CMD ", 1)[1])
        probe = [
            moved_under(root, executable),
            *(a.replace("9090", str(ops_port)) for a in arguments),
        ]
        assert subprocess.run(probe, env=env, timeout=30).returncode == 0
        ops = f"http://127.0.0.1:{ops_port}"
        assert http(ops + "/readyz")[::2] == (200, b"ready\n")
        families = {
            f.name for f in text_string_to_metric_families(http(ops + "/metrics")[2].decode())
        }
        assert "vertex_env_proxy_requests" in families
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert stdout == ""  # the key went to --write-env, not into the container's log
    assert "OPENAI_API_KEY=" in (tmp_path / "proxy.env").read_text()
    # The HEALTHCHECK fails once serve is gone: it is a check, not a formality.
    assert subprocess.run(probe, env=env, capture_output=True, timeout=30).returncode != 0

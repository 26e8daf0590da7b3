"""Every test runs isolated from the machine: its own HOME, gcloud config and XDG dirs; no Google/OpenAI variables."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from vertex_env.system.loopback import PROXY_VARIABLES, opener_for

if TYPE_CHECKING:
    from netns import ContainerNetwork

    from vertex_env.emulator import EmulatorServer

_CLEARED_PREFIXES = ("GOOGLE_", "GCE_", "CLOUDSDK_", "OPENAI_", "VERTEX_ENV_")


@pytest.fixture(autouse=True)
def isolated_machine(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) and name != "VERTEX_ENV_REQUIRE_TOOLS":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(home / ".config" / "gcloud"))
    for var, sub in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_RUNTIME_DIR", "run"),
    ):
        path = home / sub
        path.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(path))
    (home / "run").chmod(0o700)
    # The developer's forward proxy is not the test's: a test that wants one (a dead one, a far upstream's)
    # sets it; every other test runs as on a machine without one.
    for name in (*PROXY_VARIABLES, "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("BASH_ENV", raising=False)
    monkeypatch.delenv("ENV", raising=False)
    monkeypatch.delenv("SHELL", raising=False)
    monkeypatch.chdir(home)
    yield home


def require_tool(name: str) -> str:
    """Path of an external program; skip (locally) or fail (CI: VERTEX_ENV_REQUIRE_TOOLS=1) when missing."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (CI installs it via .ci/run)"
    if os.environ.get("VERTEX_ENV_REQUIRE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


SECOND_USER = "vertexenv-other"


@pytest.fixture(scope="session")
def second_user() -> tuple[int, int]:
    """(uid, gid) of a second Unix account, created with `useradd` (needs root; CI runs as root)."""
    import pwd
    import subprocess

    def unavailable(message: str) -> None:
        if os.environ.get("VERTEX_ENV_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)

    if os.geteuid() != 0:
        unavailable("a second Unix user needs root (to create it and chown to it; CI runs as root)")
    try:
        entry = pwd.getpwnam(SECOND_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            unavailable("useradd is not installed")
        subprocess.run(
            [str(useradd), "--no-create-home", "--shell", "/usr/sbin/nologin", SECOND_USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(SECOND_USER)
    return entry.pw_uid, entry.pw_gid


def start_emulator(
    monkeypatch: pytest.MonkeyPatch,
    folder: Path,
    *,
    project: str | None = "test-project",
    **config: Any,
) -> EmulatorServer:
    """A started emulator that vertex-env talks to: emulator host, an authorized_user ADC file in `folder`,
    the project (unless None). The caller stops it."""
    from vertex_env.emulator import EmulatorServer, write_authorized_user

    server = EmulatorServer(**config).start()
    monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", server.host_port)
    adc = write_authorized_user(folder / "adc.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    if project is not None:
        monkeypatch.setenv("VERTEX_ENV_PROJECT", project)
    return server


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[EmulatorServer]:
    """The emulator as most tests want it: see `start_emulator` (project test-project, authorized_user ADC)."""
    server = start_emulator(monkeypatch, tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bare_emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorServer]:
    """The emulator with nothing but VERTEX_ENV_EMULATOR_HOST set: no ADC file, no project."""
    from vertex_env.emulator import EmulatorServer

    with EmulatorServer() as server:
        monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", server.host_port)
        yield server


def http(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request (loopback never through an HTTP proxy); an HTTP error is a
    result too."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with opener_for(url).open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers), err.read()


def wait_for(predicate: Callable[[], object], timeout: float = 15, what: str = "") -> None:
    """Poll `predicate` every 20 ms until it is true; fail after `timeout` seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def wait_for_file(path: Path, timeout: float = 20) -> None:
    """Wait until `path` exists and is not empty (a child process wrote it)."""
    wait_for(lambda: path.exists() and path.stat().st_size > 0, timeout, f"{path} to be written")


def run_cli(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m vertex_env ARGS` in a subprocess of this interpreter, output captured, never raising."""
    return subprocess.run(
        [sys.executable, "-m", "vertex_env", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


# --- two real accounts on one machine (issue 22): a victim who runs vertex-env and an attacker ----------------

VICTIM, ATTACKER = "vertexenv-victim", "vertexenv-attacker"


def _unavailable(message: str) -> None:
    if os.environ.get("VERTEX_ENV_REQUIRE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


class Account:
    """A real Unix account (made with `useradd -m`), and how to run a program as it."""

    def __init__(self, name: str, uid: int, gid: int, home: Path, setpriv: str) -> None:
        self.name, self.uid, self.gid, self.home = name, uid, gid, home
        self._setpriv = setpriv

    def argv(self, *command: str) -> list[str]:
        """`command` run as this account: its uid, gid and groups, nothing else of root's."""
        return [
            self._setpriv,
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--init-groups",
            "--inh-caps=-all",
            "--",
            *command,
        ]

    def folder(self, parent: Path | None = None, mode: int = 0o700) -> Path:
        """A fresh folder of this account's (under /tmp, which every account can reach)."""
        import tempfile

        path = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=parent))
        os.chown(path, self.uid, self.gid)
        path.chmod(mode)
        return path


@pytest.fixture(scope="session")
def accounts() -> tuple[Account, Account]:
    """(victim, attacker): two ordinary accounts with homes, created with `useradd -m` (needs root; CI is root)."""
    import pwd

    if os.geteuid() != 0:
        _unavailable("two Unix accounts need root (to create them; CI runs as root)")
    setpriv, useradd = shutil.which("setpriv"), shutil.which("useradd")
    if setpriv is None or useradd is None:
        _unavailable(
            "setpriv and useradd are needed to run as another account (util-linux, passwd)"
        )
    assert setpriv is not None and useradd is not None
    made = []
    for name in (VICTIM, ATTACKER):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            subprocess.run(
                [useradd, "-m", "--shell", "/bin/sh", name], check=True, capture_output=True
            )
            entry = pwd.getpwnam(name)
        made.append(Account(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), setpriv))
    return made[0], made[1]


@pytest.fixture(scope="session")
def foreign_python(accounts: tuple[Account, Account]) -> list[str]:
    """An interpreter command any account can run that imports this checkout's vertex_env (and its
    dependencies) from the test interpreter's site-packages: `[python, "-c", boot]`, then vertex-env's args."""
    import sysconfig

    victim = accounts[0]
    purelib = sysconfig.get_paths()["purelib"]
    boot = (
        f"import site, sys; site.addsitedir({purelib!r}); sys.argv[0] = 'vertex-env'; "
        "import runpy; runpy.run_module('vertex_env', run_name='__main__', alter_sys=True)"
    )
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, shutil.which(version), f"/usr/bin/{version}"]
    for python in dict.fromkeys(c for c in candidates if c):
        # Through sh: setpriv itself may exec a path the account cannot reach (it drops root's capabilities
        # only at that exec); what vertex-env execs (the lifeline, a child) must be reachable by the account.
        probe = subprocess.run(
            victim.argv("sh", "-c", '"$0" "$@"', python, "-c", boot, "--version"),
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0:
            return [python, "-c", boot]
    _unavailable(
        f"no {version} that another account can run imports vertex_env from {purelib} "
        "(the checkout and its venv must be readable by other users)"
    )
    raise AssertionError("unreachable")


# --- a container network without Docker (issue 19): a network namespace and a veth pair ----------------------


@pytest.fixture
def container_network() -> Iterator[ContainerNetwork]:
    """A `tests.netns.ContainerNetwork`, opened, deleted after the test: as root, a namespace with a veth pair
    stands in for a container's network. Skips (fails under VERTEX_ENV_REQUIRE_TOOLS=1) without root or `ip`."""
    yield from _container_network()


@pytest.fixture(scope="module")
def module_container_network() -> Iterator[ContainerNetwork]:
    """`container_network` shared by a module's tests (one namespace; its tests must not disturb each other)."""
    yield from _container_network()


def _container_network() -> Iterator[ContainerNetwork]:
    from netns import ContainerNetwork, NetnsUnavailable

    if os.geteuid() != 0:
        _unavailable("a network namespace needs root (CI runs as root)")
    network = ContainerNetwork(require_tool("ip"))
    try:
        network.open()
    except NetnsUnavailable as err:
        _unavailable(f"cannot make a network namespace here: {err}")
    try:
        yield network
    finally:
        network.close()

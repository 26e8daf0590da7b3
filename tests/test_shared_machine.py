"""Safe on a shared machine (issue 22): a victim runs vertex-env, an attacker is another ordinary account.

Every test here runs vertex-env as a real second account (`setpriv`), and the attacker's moves as a third."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Account, wait_for, wait_for_file

from vertex_env.emulator import EmulatorServer, write_authorized_user
from vertex_env.system.lifeline import GRACE

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="setpriv and /proc are Linux"
)

_BIND = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        s.bind(("127.0.0.1", int(sys.argv[1])))
        s.listen()
    except OSError as err:
        print(err.errno)
        sys.exit(1)
    print("bound")
    """
)


class Victim:
    """The victim's side: a folder of theirs with HOME, the runtime dir and an ADC file, and vertex-env as them."""

    def __init__(self, account: Account, python: list[str], emu: EmulatorServer) -> None:
        self.account = account
        self.python = python
        self.root = account.folder()
        home = self.root / "home"
        runtime = self.root / "run"
        for folder in (home, runtime):
            folder.mkdir(mode=0o700)
        adc = write_authorized_user(self.root / "adc.json")
        for path in (home, runtime, adc):
            os.chown(path, account.uid, account.gid)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(runtime),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GOOGLE_APPLICATION_CREDENTIALS": str(adc),
            "VERTEX_ENV_EMULATOR_HOST": emu.host_port,
            "VERTEX_ENV_PROJECT": "test-project",
            "NO_GCE_CHECK": "true",
        }

    def file(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text)
        os.chown(path, self.account.uid, self.account.gid)
        return path

    def vertex_env(self, *args: str, **popen: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.account.argv(*self.python, *args),
            env=self.env,
            cwd=self.root,
            start_new_session=True,
            **popen,  # type: ignore[call-overload]
        )


@pytest.fixture
def victim(
    accounts: tuple[Account, Account], foreign_python: list[str], emu: EmulatorServer
) -> Iterator[Victim]:
    import shutil

    side = Victim(accounts[0], foreign_python, emu)
    try:
        yield side
    finally:
        shutil.rmtree(side.root, ignore_errors=True)


def attacker_binds(attacker: Account, python: str, port: int) -> bool:
    """Whether the attacker account can bind `port` on 127.0.0.1 (SO_REUSEADDR and SO_REUSEPORT set)."""
    done = subprocess.run(
        attacker.argv(python, "-I", "-S", "-c", _BIND, str(port)),
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert done.stdout.strip() in ("bound", "98"), done.stdout + done.stderr  # EADDRINUSE or bound
    return done.returncode == 0


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return state.split()[1] not in ("Z", "X")


def answered(port: int) -> bytes:
    """What a client gets from the port within half a second: b"" when nothing answers (refused or silent)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return conn.recv(100)
    except OSError:  # refused, or no answer in time
        return b""


_APP = """
import os, signal, time, urllib.parse
for name in {ignored!r}:
    signal.signal(getattr(signal, name), signal.SIG_IGN)
port = urllib.parse.urlsplit(os.environ["OPENAI_BASE_URL"]).port
open({pid_file!r} + ".tmp", "w").write(f"{{os.getpid()}} {{port}}")
os.rename({pid_file!r} + ".tmp", {pid_file!r})
time.sleep(300)
"""

_SHAPES = {
    # What `run --proxy` starts in a terminal: an interactive shell, which ignores SIGTERM, the app its child.
    "a shell ignoring SIGTERM": lambda py, app: ["bash", "-i", "-c", f"{py} {app}; true"],
    # The app as a grandchild, its parent waiting for it.
    "a grandchild app": lambda py, app: ["sh", "-c", f"{py} {app} & wait"],
}


@pytest.mark.slow
@pytest.mark.parametrize("shape", sorted(_SHAPES))
def test_after_kill_9_the_attacker_cannot_bind_the_port_while_the_app_lives(
    victim: Victim, accounts: tuple[Account, Account], shape: str
) -> None:
    """The app ignores SIGHUP and SIGTERM, so it lives until the lifeline's SIGKILL, GRACE seconds after ours:
    the attacker tries to bind the port the whole time, and fails; a request then is never answered."""
    attacker = accounts[1]
    python = victim.python[0]
    pid_file = victim.root / "app.pid"
    app = victim.file("app.py", _APP.format(ignored=("SIGHUP", "SIGTERM"), pid_file=str(pid_file)))
    command = _SHAPES[shape](python, app)
    proxy = victim.vertex_env("run", "--proxy", "--", *command)
    try:
        wait_for_file(pid_file)
        pid, port = map(int, pid_file.read_text().split())
        assert alive(pid)
        proxy.send_signal(signal.SIGKILL)
        proxy.wait(timeout=10)
        killed = time.monotonic()
        attempts = 0
        while True:
            bound = attacker_binds(attacker, python, port)
            if not alive(pid):  # it died meanwhile: this attempt proves nothing either way
                break
            # Alive after the attempt, so alive during it: the port must have stayed ours.
            assert not bound, "the attacker took the port while the app lived"
            attempts += 1
            assert answered(port) == b"", "a request was answered after the proxy died"
            assert time.monotonic() - killed < GRACE + 8, "the app outlived the proxy"
        assert attempts >= 2  # the window was real: the app lived on after our death
        # The app (its whole group) ended; only now is the port free, for anyone.
        wait_for(lambda: attacker_binds(attacker, python, port), 10, "the port to be free")
    finally:
        if proxy.poll() is None:
            proxy.kill()
            proxy.wait()
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_an_app_that_escaped_the_group_still_holds_the_port(
    victim: Victim, accounts: tuple[Account, Account]
) -> None:
    """An app in a session of its own, ignoring every polite signal, outlives the lifeline: the listening
    socket it inherited keeps the port from the attacker for as long as it lives."""
    attacker = accounts[1]
    python = victim.python[0]
    pid_file = victim.root / "app.pid"
    app = victim.file("app.py", _APP.format(ignored=("SIGHUP", "SIGTERM"), pid_file=str(pid_file)))
    proxy = victim.vertex_env(
        "run",
        "--proxy",
        "--",
        "sh",
        "-c",
        f"setsid {python} {app} & wait",
        stderr=subprocess.DEVNULL,
    )
    pid = 0
    try:
        wait_for_file(pid_file)
        pid, port = map(int, pid_file.read_text().split())
        proxy.send_signal(signal.SIGKILL)
        proxy.wait(timeout=10)
        deadline = time.monotonic() + GRACE + 1.5
        while time.monotonic() < deadline:
            assert not attacker_binds(attacker, python, port), "the attacker took the port"
            assert alive(pid)
            assert answered(port) == b""
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid), 10, "the app to die")
        wait_for(lambda: attacker_binds(attacker, python, port), 10, "the port to be free")
    finally:
        if proxy.poll() is None:
            proxy.kill()
            proxy.wait()
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)

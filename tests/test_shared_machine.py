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

from vertex_env.emulator import EmulatorServer, write_authorized_user, write_external_account
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
        process: subprocess.Popen[bytes] = subprocess.Popen(
            self.account.argv(*self.python, *args),
            env=self.env,
            cwd=self.root,
            start_new_session=True,
            **popen,  # type: ignore[call-overload]
        )
        return process


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
            if attempts == 0:  # (once: waiting for no answer takes half a second of the window)
                assert answered(port) == b"", "a request was answered after the proxy died"
            attempts += 1
            assert time.monotonic() - killed < GRACE + 8, "the app outlived the proxy"
        assert attempts >= 1, "the app died before the attacker could try"
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


# --- files: no foreign links, no foreign files, no FIFOs or devices (item 2-4, 8) -------------------------------


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A sticky, world-writable folder as /tmp is (root's), where the attacker plants names."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="vertexenv-shared-"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_account(account: Account, *command: str) -> None:
    subprocess.run(account.argv(*command), check=True, capture_output=True)


def run_as_victim(
    victim: Victim, *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        victim.account.argv(*victim.python, *args),
        env={**victim.env, **(env or {})},
        cwd=victim.root,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_link_planted_in_a_sticky_folder_is_not_followed_by_write(
    victim: Victim, accounts: tuple[Account, Account], shared_folder: Path
) -> None:
    attacker = accounts[1]
    notes = victim.file("notes.txt", "my notes\n")
    notes.chmod(0o644)
    link = shared_folder / "proj.env"
    as_account(attacker, "ln", "-s", str(notes), str(link))
    result = run_as_victim(victim, "write", str(link))
    assert result.returncode == 9, result.stderr
    assert "symbolic link of another user" in result.stderr and str(link) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert notes.read_text() == "my notes\n"
    assert notes.stat().st_mode & 0o777 == 0o644
    # The victim's own link in the same folder is followed (the kernel's rule: a link of the follower's).
    link.unlink()
    as_account(victim.account, "ln", "-s", str(notes), str(link))
    assert run_as_victim(victim, "write", str(link)).returncode == 0
    assert "OPENAI_API_KEY=" in notes.read_text() and notes.stat().st_mode & 0o777 == 0o600


def test_serve_write_env_neither_follows_nor_chmods_a_planted_link(
    victim: Victim, accounts: tuple[Account, Account], shared_folder: Path
) -> None:
    attacker = accounts[1]
    notes = victim.file("notes.txt", "my notes\n")
    notes.chmod(0o644)
    link = shared_folder / "serve.env"
    as_account(attacker, "ln", "-s", str(notes), str(link))
    result = run_as_victim(victim, "serve", "--write-env", str(link), timeout=60)
    assert result.returncode == 9, result.stderr
    assert "symbolic link of another user" in result.stderr
    assert notes.read_text() == "my notes\n" and notes.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("variable,fmt", [("GITHUB_ENV", "github"), ("BASH_ENV", "circleci")])
def test_ci_env_files_of_another_user_or_behind_their_link_get_no_token(
    victim: Victim,
    accounts: tuple[Account, Account],
    shared_folder: Path,
    variable: str,
    fmt: str,
) -> None:
    attacker = accounts[1]
    theirs = shared_folder / "env"
    as_account(attacker, "sh", "-c", f"umask 0; : > {theirs}; chmod 666 {theirs}")
    result = run_as_victim(victim, "export", "--format", fmt, env={variable: str(theirs)})
    assert result.returncode == 9, result.stderr
    assert f"uid {attacker.uid}" in result.stderr and str(theirs) in result.stderr
    assert theirs.read_bytes() == b""
    assert "ya29" not in result.stdout + result.stderr

    mine = victim.file("job.env", "")
    mine.chmod(0o644)
    link = shared_folder / "link"
    as_account(attacker, "ln", "-s", str(mine), str(link))
    result = run_as_victim(victim, "export", "--format", fmt, env={variable: str(link)})
    assert result.returncode == 9 and "symbolic link of another user" in result.stderr
    assert mine.read_bytes() == b"" and mine.stat().st_mode & 0o777 == 0o644
    # The job's own file: written, and made private (it holds a token now).
    result = run_as_victim(victim, "export", "--format", fmt, env={variable: str(mine)})
    assert result.returncode == 0, result.stderr
    assert "OPENAI_API_KEY" in mine.read_text() and mine.stat().st_mode & 0o777 == 0o600


def test_run_refuses_an_env_file_of_another_user(
    victim: Victim, accounts: tuple[Account, Account], shared_folder: Path
) -> None:
    attacker = accounts[1]
    evil, ran = shared_folder / "evil.sh", shared_folder / "ran"
    app_env = shared_folder / "app.env"
    script = f"echo 'touch {ran}' > {evil}; echo 'BASH_ENV={evil}' > {app_env}; chmod 644 {app_env}"
    as_account(attacker, "sh", "-c", script)
    result = run_as_victim(victim, "run", "--env-file", str(app_env), "--", "bash", "-c", "true")
    assert result.returncode == 9, result.stderr
    assert f"refusing env file {app_env}: it belongs to another user" in result.stderr
    assert not ran.exists()


@pytest.mark.parametrize("what", ["config", "adc", "credential_source"])
def test_a_config_or_credential_file_of_another_user_is_refused(
    victim: Victim, accounts: tuple[Account, Account], shared_folder: Path, what: str
) -> None:
    attacker = accounts[1]
    planted = shared_folder / "planted"
    if what == "config":  # it would send the token to evil.example
        planted.write_text('[default]\nproject = "p"\nhost = "evil.example"\n')
        env = {"VERTEX_ENV_CONFIG": str(planted)}
    elif (
        what == "adc"
    ):  # a valid ADC of the attacker's: the victim would act as (and leak prompts to) the attacker
        planted.write_bytes(Path(victim.env["GOOGLE_APPLICATION_CREDENTIALS"]).read_bytes())
        env = {"GOOGLE_APPLICATION_CREDENTIALS": str(planted)}
    else:  # the victim's own workload identity file, its subject token planted by the attacker
        adc = write_external_account(victim.root / "wif.json", subject_token_file=planted)
        os.chown(adc, victim.account.uid, victim.account.gid)
        env = {"GOOGLE_APPLICATION_CREDENTIALS": str(adc)}
    planted.chmod(0o644)
    os.chown(planted, attacker.uid, attacker.gid)
    result = run_as_victim(victim, "export", env=env)
    assert result.returncode == 9, result.stderr
    assert str(planted) in result.stderr and f"uid {attacker.uid}" in result.stderr
    assert "ya29" not in result.stdout


def test_a_fifo_or_device_is_refused_at_once(victim: Victim) -> None:
    fifo = victim.root / "fifo.env"
    os.mkfifo(fifo, 0o600)
    os.chown(fifo, victim.account.uid, victim.account.gid)
    zero = victim.root / "zero.env"
    os.symlink("/dev/zero", zero)
    os.lchown(zero, victim.account.uid, victim.account.gid)
    for args in (
        ("write", str(fifo)),
        ("run", "--env-file", str(fifo), "--", "true"),
        ("run", "--env-file", str(zero), "--", "true"),
    ):
        started = time.monotonic()
        result = run_as_victim(victim, *args, timeout=30)
        assert result.returncode == 9, (args, result.stderr)
        assert "not a regular file" in result.stderr
        assert time.monotonic() - started < 10  # the writers' lock deadline; in fact at once


# --- the proxy key (item 8) ---------------------------------------------------------------------------------


SHARED_GROUP = "vertexenv-shared"


def _read_key_as(
    victim: Account, gid: int, python: str, path: Path
) -> subprocess.CompletedProcess[str]:
    """`read_key_file(path)` in a process of the victim's whose group is `gid` (as a pod's fsGroup)."""
    import sysconfig

    code = (
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n"
        "import sys, pathlib\nfrom vertex_env.errors import ConfigError\n"
        "from vertex_env.system.loopback import read_key_file\n"
        f"try:\n    print(read_key_file(pathlib.Path({str(path)!r})))\n"
        "except ConfigError as err:\n    print(err)\n    sys.exit(3)\n"
    )
    setpriv = victim.argv()[0]
    argv = [setpriv, f"--reuid={victim.uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all"]
    return subprocess.run([*argv, "--", python, "-c", code], capture_output=True, text=True)


def test_the_key_file_group_exception_needs_a_group_no_other_user_is_in(
    victim: Victim, accounts: tuple[Account, Account]
) -> None:
    """A root-owned 0440 key readable by the process's group (a 0400 secret under a pod's fsGroup) is
    accepted only when no other account is in that group: else every member reads the key."""
    import grp

    attacker = accounts[1]
    subprocess.run(["groupadd", "-f", SHARED_GROUP], check=True, capture_output=True)
    subprocess.run(["usermod", "-aG", SHARED_GROUP, attacker.name], check=True, capture_output=True)
    shared_gid = grp.getgrnam(SHARED_GROUP).gr_gid
    key = "k" * 48
    for gid, accepted in ((victim.account.gid, True), (shared_gid, False)):
        path = victim.root / f"key-{gid}"
        path.write_text(key + "\n")
        os.chown(path, 0, gid)
        path.chmod(0o440)
        result = _read_key_as(victim.account, gid, victim.python[0], path)
        if accepted:
            assert (result.returncode, result.stdout.strip()) == (0, key), result.stderr
        else:
            assert result.returncode == 3, result.stdout + result.stderr
            assert "other users are in too" in result.stdout and attacker.name in result.stdout
            assert key not in result.stdout + result.stderr


@pytest.mark.parametrize("key", ["k" * 40 + "\x1b[2J", "k" * 40 + "\x00x", "k" * 40 + " x"])
def test_a_proxy_key_with_a_control_character_or_space_is_refused(key: str) -> None:
    from vertex_env.errors import ConfigError
    from vertex_env.system.loopback import check_key

    with pytest.raises(ConfigError, match="printable ASCII"):
        check_key(key)

"""`run --proxy`: the child never outlives the proxy it depends on, and gets every signal a terminal or a
supervisor sends to vertex-env."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import wait_for_file

from vertex_env.emulator import EmulatorServer


def alive(pid: int) -> bool:
    """Running or stopped; a zombie (dead, waiting for a reaper that may not exist here) is not alive."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return state.split()[1] not in ("Z", "X")


def run_proxy(script: str) -> subprocess.Popen[bytes]:
    """`vertex-env run --proxy` in a session of its own: no terminal, so every signal is ours to forward."""
    return subprocess.Popen(
        [sys.executable, "-m", "vertex_env", "run", "--proxy", "--", sys.executable, "-c", script],
        start_new_session=True,
    )


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_the_child_dies_when_vertex_env_is_killed(emu: EmulatorServer, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = textwrap.dedent(
        f"""
        import os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(120)
        """
    )
    parent = run_proxy(script)
    try:
        wait_for_file(pid_file)
        child = int(pid_file.read_text())
        assert alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while alive(child):
            assert time.monotonic() < deadline, "the child outlived the proxy"
            time.sleep(0.02)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    "leader", [True, False], ids=["leading its group", "in its caller's group"]
)
def test_a_grandchild_ignoring_sigterm_dies_when_vertex_env_is_killed(
    emu: EmulatorServer, tmp_path: Path, leader: bool
) -> None:
    """PR_SET_PDEATHSIG reaches only the direct child: the lifeline ends the rest, whether vertex-env leads its
    process group (a shell's job: the group is ended) or runs in its caller's (the child got a group of its own,
    and that group is ended; the caller's, this test's, is left alone)."""
    pid_file = tmp_path / "pid"
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            f"""
            import os, signal, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            open({str(pid_file)!r}, "w").write(str(os.getpid()))
            time.sleep(120)
            """
        )
    )
    parent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vertex_env",
            "run",
            "--proxy",
            "--",
            "sh",
            "-c",
            f"{sys.executable} {app} & wait",
        ],
        start_new_session=leader,
    )
    try:
        wait_for_file(pid_file)
        app_pid = int(pid_file.read_text())
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while alive(app_pid):
            assert time.monotonic() < deadline, "the grandchild outlived the proxy"
            time.sleep(0.02)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGALRM", "SIGWINCH", "SIGHUP", "SIGINT"]
)
def test_every_signal_a_supervisor_sends_reaches_the_child(
    emu: EmulatorServer, tmp_path: Path, name: str
) -> None:
    ready, got = tmp_path / "ready", tmp_path / "got"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        def note(signum, frame):
            open({str(got)!r}, "w").write(signal.Signals(signum).name)
            sys.exit(7)
        signal.signal(signal.{name}, note)
        open({str(ready)!r}, "w").write("1")
        while True:
            signal.pause()
        """
    )
    parent = run_proxy(script)
    try:
        wait_for_file(ready)
        parent.send_signal(getattr(signal, name))
        assert parent.wait(timeout=20) == 7
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    assert got.read_text() == name


# -- no core dumps from the long-running holders of a token ----------------------------------------------


def core_limit(pid: int) -> str:
    line = next(
        line
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines()
        if line.startswith("Max core file size")
    )
    return " ".join(line.split()[4:6])  # soft and hard


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_run_proxy_and_serve_write_no_core_dump(emu: EmulatorServer, tmp_path: Path) -> None:
    seen = tmp_path / "limits"
    script = (
        f"import os; open({str(seen)!r}, 'w').write(open(f'/proc/{{os.getppid()}}/limits').read())"
    )
    parent = run_proxy(script)
    assert parent.wait(timeout=30) == 0
    line = next(x for x in seen.read_text().splitlines() if x.startswith("Max core file size"))
    assert line.split()[4:6] == ["0", "0"]

    serve = subprocess.Popen(
        [sys.executable, "-m", "vertex_env", "serve", "--json"], stdout=subprocess.PIPE
    )
    try:
        assert serve.stdout is not None
        serve.stdout.readline()
        assert core_limit(serve.pid) == "0 0"
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        if serve.stdout is not None:
            serve.stdout.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux only")
def test_disable_core_dumps_makes_the_process_undumpable() -> None:
    import ctypes
    import os

    from vertex_env.system.hardening import disable_core_dumps

    pid = os.fork()
    if pid == 0:  # in a child: the test process keeps its own settings
        code = 1
        try:
            disable_core_dumps()
            import resource

            get_dumpable = 3  # PR_GET_DUMPABLE
            dumpable = ctypes.CDLL(None).prctl(get_dumpable, 0, 0, 0, 0)
            code = 0 if (dumpable, resource.getrlimit(resource.RLIMIT_CORE)) == (0, (0, 0)) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

"""The child-process sink: exit codes, signals, PATH lookup errors, nesting, and no token in any argv."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from vertex_env.emulator import EmulatorServer
from vertex_env.errors import (
    EXIT_CODES,
    CommandNotExecutableError,
    CommandNotFoundError,
    NestedRunError,
)
from vertex_env.sinks.exec_child import check_not_nested, child_environment, spawn_and_wait

TOKEN = "ya29.a0AfB_byC-1x2Y3z_ABCdef-GHI.jkl_MNO-pqr"
VARIABLES = {
    "OPENAI_API_KEY": TOKEN,
    "OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
    "VERTEX_ENV_EXPIRES_AT": "1",
}


def base_env() -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"]}


def wait_for(path: Path, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.01)
    raise AssertionError(f"{path} never written")


# --- environment and nesting -------------------------------------------------------------------


def test_child_environment_replaces_stale_variables() -> None:
    parent = {"PATH": "/bin", "OPENAI_API_KEY": "ya29.stale", "OPENAI_BASE_URL": "http://old"}
    env = child_environment(parent, VARIABLES)
    assert env == {"PATH": "/bin", **VARIABLES, "VERTEX_ENV_ACTIVE": "1"}
    assert parent["OPENAI_API_KEY"] == "ya29.stale"


def test_nested_run_is_refused() -> None:
    with pytest.raises(NestedRunError) as info:
        check_not_nested(child_environment(base_env(), VARIABLES), force=False)
    assert info.value.exit_code == 13
    assert "--force" in str(info.value)
    assert 13 in EXIT_CODES


def test_nested_run_with_force_is_allowed() -> None:
    check_not_nested({"VERTEX_ENV_ACTIVE": "1"}, force=True)
    check_not_nested(base_env(), force=False)


# --- exit codes ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_spawn_and_wait_returns_every_exit_code() -> None:
    codes = [spawn_and_wait(["/bin/sh", "-c", f"exit {code}"], base_env()) for code in range(256)]
    assert codes == list(range(256))


EXEC_EACH_CODE = textwrap.dedent(
    """
    import os, sys
    from vertex_env.sinks.exec_child import exec_command
    results = []
    for code in range(256):
        pid = os.fork()
        if pid == 0:
            try:
                exec_command(["sh", "-c", f"exit {code}"], dict(os.environ))
            finally:
                os._exit(250)
        results.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    print(results)
    """
)


@pytest.mark.slow
def test_exec_command_passes_every_exit_code_through() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", EXEC_EACH_CODE],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(proc.stdout) == list(range(256))


@pytest.mark.parametrize(("signum"), [signal.SIGTERM, signal.SIGKILL, signal.SIGINT])
def test_spawn_and_wait_reports_a_signal_death_as_128_plus_n(signum: int) -> None:
    assert spawn_and_wait(["/bin/sh", "-c", f"kill -{int(signum)} $$"], base_env()) == 128 + signum


# --- signals forwarded by spawn_and_wait -------------------------------------------------------

TRAPPING_CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    out = sys.argv[1]
    def got(signum, frame):
        with open(out, "a") as f:
            f.write(signal.Signals(signum).name + "\\n")
        os._exit(40 + signum)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, got)
    with open(out + ".ready", "w") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(30)
    os._exit(99)
    """
)

SPAWNING_PARENT = textwrap.dedent(
    """
    import os, sys
    from vertex_env.sinks.exec_child import spawn_and_wait
    sys.exit(spawn_and_wait(sys.argv[1:], dict(os.environ)))
    """
)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_spawn_and_wait_forwards_signals_and_mirrors_the_exit(signum: int, tmp_path: Path) -> None:
    out = tmp_path / "signals"
    child = tmp_path / "child.py"
    child.write_text(TRAPPING_CHILD)
    parent = subprocess.Popen(
        [sys.executable, "-c", SPAWNING_PARENT, sys.executable, str(child), str(out)],
        env=base_env(),
        start_new_session=True,  # no controlling terminal: nothing but the parent sends the child signals
    )
    wait_for(Path(f"{out}.ready"))
    parent.send_signal(signum)
    assert parent.wait(timeout=20) == 40 + signum
    assert out.read_text() == f"{signal.Signals(signum).name}\n"


# --- lookup errors ------------------------------------------------------------------------------


def test_spawn_missing_command_is_127() -> None:
    with pytest.raises(CommandNotFoundError) as info:
        spawn_and_wait(["vertex-env-no-such-command"], base_env())
    assert info.value.exit_code == 127
    assert "vertex-env-no-such-command" in str(info.value)


def test_spawn_not_executable_is_126(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    with pytest.raises(CommandNotExecutableError) as info:
        spawn_and_wait([str(script)], base_env())
    assert info.value.exit_code == 126


EXEC_AND_REPORT = textwrap.dedent(
    """
    import os, sys
    from vertex_env.errors import VertexEnvError
    from vertex_env.sinks.exec_child import exec_command
    try:
        exec_command(sys.argv[1:], dict(os.environ))
    except VertexEnvError as exc:
        print(exc, file=sys.stderr)
        sys.exit(exc.exit_code)
    """
)


def run_exec(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", EXEC_AND_REPORT, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_exec_missing_command_is_127() -> None:
    proc = run_exec(["vertex-env-no-such-command", "arg"], base_env())
    assert proc.returncode == 127
    assert "command not found: vertex-env-no-such-command" in proc.stderr


def test_exec_not_executable_is_126(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    proc = run_exec([str(script)], base_env())
    assert proc.returncode == 126


def test_exec_searches_the_childs_path(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "only-here"
    tool.write_text("#!/bin/sh\nexit 42\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    env = {**base_env(), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    assert run_exec(["only-here"], env).returncode == 42


def test_exec_without_command_starts_the_shell(tmp_path: Path) -> None:
    shell = tmp_path / "fake-shell"
    shell.write_text('#!/bin/sh\necho "shell $OPENAI_BASE_URL"\n')
    shell.chmod(0o755)
    env = child_environment({**base_env(), "SHELL": str(shell)}, VARIABLES)
    proc = run_exec([], env)
    assert proc.stdout == "shell http://127.0.0.1:1/v1\n"


def test_exec_flushes_buffered_output_first() -> None:
    script = "import sys; from vertex_env.sinks.exec_child import exec_command; print('before'); exec_command(['echo', 'after'], {'PATH': '/usr/bin:/bin'})"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert proc.stdout == "before\nafter\n"


# --- the token is never in an argv --------------------------------------------------------------

SLEEPER = textwrap.dedent(
    """
    import os, sys, time
    with open(sys.argv[1], "w") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(30)
    """
)


def cmdline_and_environ(pid: int) -> tuple[bytes, bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes(), Path(f"/proc/{pid}/environ").read_bytes()


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_exec_child_gets_the_token_in_its_environment_not_its_argv(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    env = child_environment(base_env(), VARIABLES)
    proc = subprocess.Popen(
        [sys.executable, "-c", EXEC_AND_REPORT, sys.executable, "-c", SLEEPER, str(ready)], env=env
    )
    try:
        pid = int(wait_for(ready))
        assert pid == proc.pid  # exec: the same process, now the command
        cmdline, environ = cmdline_and_environ(pid)
        assert TOKEN.encode() not in cmdline
        assert f"OPENAI_API_KEY={TOKEN}".encode() in environ.split(b"\0")
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_spawned_child_gets_the_token_in_its_environment_not_its_argv(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    parent = subprocess.Popen(
        [sys.executable, "-c", SPAWNING_PARENT, sys.executable, "-c", SLEEPER, str(ready)],
        env=child_environment(base_env(), VARIABLES),
        start_new_session=True,
    )
    try:
        pid = int(wait_for(ready))
        assert pid != parent.pid
        for process in (pid, parent.pid):
            cmdline, environ = cmdline_and_environ(process)
            assert TOKEN.encode() not in cmdline
        assert f"OPENAI_API_KEY={TOKEN}".encode() in environ.split(b"\0")
    finally:
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=20)


# --- run --env-file ----------------------------------------------------------------------------

VERTEX_ENV = str(Path(sys.executable).parent / "vertex-env")
SHOW_ENV = (
    "import json, os; print(json.dumps({k: os.environ.get(k) for k in "
    "('FOO', 'BAR', 'SHARED', 'REF', 'OPENAI_API_KEY', 'VERTEX_ENV_ACTIVE')}))"
)


def _env_files(folder: Path) -> list[str]:
    (folder / "a.env").write_text(
        'FOO=from-a\nBAR="a quoted value"\nOPENAI_API_KEY=sk-from-the-file\nSHARED=a\n'
    )
    (folder / "b.env").write_text("# a comment\nSHARED=b\nREF=${FOO}\nBARE\n")
    return ["--env-file", str(folder / "a.env"), "--env-file", str(folder / "b.env")]


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["--proxy"]])
def test_env_files_add_their_variables_and_ours_win(
    mode: list[str], emu: Any, tmp_path: Path
) -> None:
    result = subprocess.run(
        [VERTEX_ENV, "run", *mode, *_env_files(tmp_path), "--", sys.executable, "-c", SHOW_ENV],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["FOO"] == "from-a" and seen["BAR"] == "a quoted value"
    assert seen["SHARED"] == "b", "a later file wins"
    assert seen["REF"] == "${FOO}", "values are taken as written"
    assert seen["OPENAI_API_KEY"] not in (None, "sk-from-the-file"), "vertex-env's own value wins"
    assert seen["VERTEX_ENV_ACTIVE"] == ("proxy" if mode else "1")
    assert result.stderr == (
        "vertex-env: note: OPENAI_API_KEY from --env-file replaced by vertex-env's own value\n"
    )


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_an_env_file_that_cannot_be_read_exits_9_before_asking_google(
    kind: str, emu: Any, tmp_path: Path
) -> None:
    path = tmp_path / "x.env"
    if kind == "folder":
        path.mkdir()
    result = subprocess.run(
        [VERTEX_ENV, "run", "--env-file", str(path), "--", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 9
    assert result.stderr.startswith(f"vertex-env: error: env file {path} ")
    assert result.stderr.count("\n") == 1 and result.stdout == ""
    assert emu.state.stats()["tokens_issued"] == 0


def test_an_env_file_line_that_is_no_assignment_exits_9_naming_the_file_and_line(
    emu: Any, tmp_path: Path
) -> None:
    """python-dotenv warns about such a line (without the file's name) and skips it; the child would run
    without what it meant to set. The line is not echoed: it may hold a secret."""
    path = tmp_path / "x.env"
    path.write_text("FOO=1\nsecret-looking value without a name\nBAR=2\n")
    marker = tmp_path / "ran"
    result = subprocess.run(
        [VERTEX_ENV, "run", "--env-file", str(path), "--", "touch", str(marker)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 9
    assert result.stderr == (
        f"vertex-env: error: env file {path}: line 2 is not NAME=VALUE "
        "(a comment starts with #; quote a value with spaces)\n"
    )
    assert "secret-looking" not in result.stderr and result.stdout == ""
    assert not marker.exists()
    assert emu.state.stats()["tokens_issued"] == 0


@pytest.mark.parametrize(
    ("minutes_left", "replaced"),
    [(40, True), (50, False)],
    ids=["less-than-45-min-left", "more-than-45-min-left"],
)
@pytest.mark.slow  # a vertex-env process per case
def test_run_gives_its_child_a_token_with_most_of_its_life_left(
    emu: EmulatorServer, minutes_left: int, replaced: bool
) -> None:
    """`run` hands its token over by value: a cached one with less than 45 minutes left (though well past the
    profile's 5-minute margin) is replaced first; one with more is the child's as it is."""
    from vertex_env.core.token import Token
    from vertex_env.environment import resolve

    source = resolve().token_source
    now = time.time()
    old = Token(
        "ya29.emu-cached-" + "x" * 20,
        now + minutes_left * 60,
        now - 3600 + minutes_left * 60,
        None,
        "authorized_user",
    )
    source.cache.write(source.cache_key, old)
    assert source.get().value == old.value  # fresh by the profile's own 5-minute rule
    result = run_cli(
        "run", "--", sys.executable, "-c", "import os; print(os.environ['OPENAI_API_KEY'])"
    )
    assert result.returncode == 0, result.stderr
    assert (result.stdout.strip() != old.value) is replaced
    assert emu.admin.stats()["tokens_issued"] == (1 if replaced else 0)
    assert result.stderr == ""

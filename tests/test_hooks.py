"""Prompt hooks in real interactive bash, zsh and fish sessions (each on a pseudo-terminal).

A shim `vertex-env` and a shim `date` first on PATH log every call: a prompt with a fresh token starts no
process at all, and a prompt near expiry re-exports exactly once.
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
import select
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import require_tool

from vertex_env.emulator import EmulatorServer, write_authorized_user

LIFETIME = 6  # seconds: the emulator's tokens, so a session sees one rotation
MARGIN = 3  # VERTEX_ENV_HOOK_MARGIN: re-export when less than this is left

SHELLS = {
    "bash": (["bash", "--norc", "--noprofile", "-i"], 'eval "$(vertex-env hook bash)"', "$?"),
    "zsh": (["zsh", "-f", "-i"], 'eval "$(vertex-env hook zsh)"', "$?"),
    "fish": (["fish", "--no-config", "-i"], "vertex-env hook fish | source", "$status"),
}


#: The prompt of every session: the test types the next line once the shell shows it again.
PROMPT = "__vertex_env_test_prompt__ "
_AT_PROMPT = re.compile(re.escape(PROMPT.encode()) + rb"(?:\x1b\[[0-9;?]*[A-Za-z])*\Z")
FISH_PROMPT = f"function fish_prompt; printf '%s' '{PROMPT}'; end"
#: Without a prompt it knows (an rc file that sets its own), a line is typed after this much silence.
QUIET = 0.4


def run_in_pty(
    argv: list[str], lines: list[str], env: dict[str, str], cwd: Path, timeout: float = 40
) -> str:
    """Type `lines` into an interactive shell on a pseudo-terminal, each once the shell is back at its prompt
    (the previous command and the prompt hook done); return the transcript once it exits."""
    master, slave = os.openpty()

    def controlling_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    shell_at = next(i for i, arg in enumerate(argv) if Path(arg).name in SHELLS)
    if Path(argv[shell_at]).name == "fish":
        argv = [*argv[: shell_at + 1], "--init-command", FISH_PROMPT, *argv[shell_at + 1 :]]
    proc = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**env, "PS1": PROMPT},  # bash and zsh take it from the environment
        cwd=cwd,
        start_new_session=True,
        preexec_fn=controlling_terminal,
    )
    os.close(slave)
    transcript = b""
    deadline = time.monotonic() + timeout

    def read(wait: float) -> bool:
        nonlocal transcript
        ready, _, _ = select.select([master], [], [], wait)
        if not ready:
            return True
        try:
            data = os.read(master, 65536)
        except OSError:
            return False
        transcript += data
        return bool(data)

    def at_new_prompt(since: int) -> bool:
        """A prompt printed after a line ending that came after `since` (fish repaints the prompt while
        echoing what is typed: only a prompt after the Enter counts)."""
        newline = transcript.find(b"\n", since)
        return newline >= 0 and _AT_PROMPT.search(transcript, newline) is not None

    def wait_for_prompt(ready: Callable[[], bool]) -> None:
        """Until `ready`, or (a prompt this does not know) QUIET seconds without output."""
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and not ready():
            size = len(transcript)
            if not read(0.05):
                return
            if len(transcript) > size:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > QUIET:
                return

    try:
        wait_for_prompt(lambda: _AT_PROMPT.search(transcript) is not None)  # the first prompt
        for line in lines:
            since = len(transcript)
            os.write(master, line.encode() + b"\n")
            if line != "exit":
                wait_for_prompt(functools.partial(at_new_prompt, since))
        while proc.poll() is None and time.monotonic() < deadline:
            read(0.05)
        read(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        os.close(master)
    return transcript.decode(errors="replace")


@pytest.fixture
def session_env(
    isolated_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[dict[str, str], EmulatorServer, Path]]:
    shims = isolated_machine / "shims"
    shims.mkdir()
    log = isolated_machine / "calls.log"
    # A console script of its own (not a shell script that execs the real one): `hook` names the program it
    # runs as, so the hooks it prints call this shim, which logs every call.
    (shims / "vertex-env").write_text(
        f"#!{sys.executable}\nimport sys\n"
        f"with open({str(log)!r}, 'a') as fh:\n"
        "    fh.write(' '.join(['vertex-env', *sys.argv[1:]]) + '\\n')\n"
        "from vertex_env.cli.entry import entry_point\nentry_point()\n"
    )
    (shims / "date").write_text(f'#!/bin/sh\necho "date $*" >> {log}\nexec /bin/date "$@"\n')
    for shim in shims.iterdir():
        shim.chmod(0o755)
    with EmulatorServer(expires_in=LIFETIME) as emu:
        env = dict(os.environ)
        env.update(
            PATH=f"{shims}:{os.environ.get('PATH', '')}",
            VERTEX_ENV_EMULATOR_HOST=emu.host_port,
            VERTEX_ENV_PROJECT="test-project",
            GOOGLE_APPLICATION_CREDENTIALS=str(
                write_authorized_user(isolated_machine / "adc.json")
            ),
            VERTEX_ENV_HOOK_MARGIN=str(MARGIN),
            TERM="dumb",
            fish_greeting="",
        )
        yield env, emu, log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_the_hook_refreshes_near_expiry_and_spawns_nothing_while_fresh(
    shell: str, session_env: tuple[dict[str, str], EmulatorServer, Path], isolated_machine: Path
) -> None:
    argv, load, status_var = SHELLS[shell]
    require_tool(argv[0])
    env, emu, log = session_env
    lines = [
        load,  # this line runs `vertex-env hook`; the prompt after it exports (nothing set yet)
        'echo "$OPENAI_API_KEY" > first.txt',
        "true",
        "false",
        f'echo "{status_var}" > status.txt',  # the hook ran in between and left $? alone
        f"sleep {LIFETIME - MARGIN + 1}",  # now the token is within the margin of expiry
        'echo "$OPENAI_API_KEY" > second.txt',
        "true",
        "exit",
    ]
    run_in_pty(argv, lines, env, isolated_machine)
    log_lines = calls(log)
    assert [c for c in log_lines if c.startswith("date")] == [], (
        "the hook must use the shell's own clock"
    )
    assert log_lines == [
        f"vertex-env hook {shell}",
        f"vertex-env export --format {shell if shell == 'fish' else 'sh'}",
        f"vertex-env export --format {shell if shell == 'fish' else 'sh'}",
    ]
    first = (isolated_machine / "first.txt").read_text().strip()
    second = (isolated_machine / "second.txt").read_text().strip()
    assert first.startswith("ya29.emu-") and second.startswith("ya29.emu-")
    assert first != second, "the token rotated underneath the session"
    assert emu.state.lookup_token(second) is not None
    assert (isolated_machine / "status.txt").read_text().strip() == "1"


@pytest.mark.slow
@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_a_failed_refresh_keeps_the_old_variables_and_warns_once(
    shell: str, session_env: tuple[dict[str, str], EmulatorServer, Path], isolated_machine: Path
) -> None:
    argv, load, status_var = SHELLS[shell]
    require_tool(argv[0])
    env, _emu, log = session_env
    setter = "set -gx {} {}" if shell == "fish" else "export {}={}"
    lines = [
        load,
        'echo "$OPENAI_API_KEY" > first.txt',
        setter.format("VERTEX_ENV_CREDENTIALS", "/nonexistent.json"),
        setter.format(
            "VERTEX_ENV_EXPIRES_AT", "1"
        ),  # due at every prompt from now on; every refresh fails
        "true",
        "true",
        "false",
        f'echo "{status_var}" > status.txt',
        'echo "$OPENAI_API_KEY" > second.txt',
        "exit",
    ]
    transcript = run_in_pty(argv, lines, env, isolated_machine)
    assert transcript.count("could not refresh the token") == 1, transcript
    exports = [c for c in calls(log) if c.startswith("vertex-env export")]
    assert len(exports) == 2, (
        "after a failure the hook waits VERTEX_ENV_HOOK_RETRY before trying again"
    )
    first = (isolated_machine / "first.txt").read_text().strip()
    assert first.startswith("ya29.emu-")
    assert (isolated_machine / "second.txt").read_text().strip() == first
    assert (isolated_machine / "status.txt").read_text().strip() == "1"


@pytest.mark.slow
def test_bash_hook_keeps_prompt_command_entries_and_their_exit_status(
    session_env: tuple[dict[str, str], EmulatorServer, Path], isolated_machine: Path
) -> None:
    require_tool("bash")
    env, _emu, log = session_env
    env["VERTEX_ENV_HOOK_MARGIN"] = (
        "300"  # more than the 6 s token lives: the hook must not spawn at each prompt
    )
    lines = [
        "PROMPT_COMMAND='echo \"mine:$?\" >> prompt.log'",
        'eval "$(vertex-env hook bash)"',
        'eval "$(vertex-env hook bash)"',  # a second load adds nothing
        "false",
        "true",
        "declare -p PROMPT_COMMAND > pc.txt",
        "exit",
    ]
    run_in_pty(SHELLS["bash"][0], lines, env, isolated_machine)
    # one line per prompt: after the assignment, both loads, `false`, `true`, `declare`
    assert (isolated_machine / "prompt.log").read_text().splitlines() == [
        "mine:0",
        "mine:0",
        "mine:0",
        "mine:1",
        "mine:0",
        "mine:0",
    ]
    pc = (isolated_machine / "pc.txt").read_text()
    assert pc.count("__vertex_env_hook") == 1 and "mine:" in pc
    exports = [c for c in calls(log) if c.startswith("vertex-env export")]
    assert len(exports) == 1, (
        "a token shorter-lived than the margin is looked at again only halfway"
    )


def test_bash_hook_joins_an_array_prompt_command(isolated_machine: Path) -> None:
    require_tool("bash")
    from vertex_env.cli.commands.hook import hook_text

    script = (
        "PROMPT_COMMAND=('echo one' 'echo two')\n"
        + hook_text("bash")
        + "\n"
        + hook_text("bash")
        + '\nprintf "%s\\n" "${PROMPT_COMMAND[@]}"\n'
    )
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=True,
    ).stdout
    assert out.splitlines() == ["__vertex_env_hook", "echo one", "echo two"]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_the_hook_sees_the_same_clock_as_date(shell: str, isolated_machine: Path) -> None:
    """The pure-shell clock is the epoch (so the comparison with VERTEX_ENV_EXPIRES_AT means something)."""
    require_tool(shell)
    script = {
        "bash": 'if [[ -n ${EPOCHSECONDS-} ]]; then echo $EPOCHSECONDS; else printf "%(%s)T\\n" -1; fi',
        "zsh": "zmodload -F zsh/datetime p:EPOCHSECONDS; echo $EPOCHSECONDS",
    }[shell]
    out = subprocess.run([shell, "-c", script], capture_output=True, text=True, check=True)
    assert abs(int(out.stdout) - time.time()) < 3


def test_the_fish_clock_is_the_epoch(isolated_machine: Path) -> None:
    require_tool("fish")
    from vertex_env.cli.commands.hook import hook_text

    script = hook_text("fish") + "\n__vertex_env_now\n"
    out = subprocess.run(
        ["fish", "--no-config", "-c", script], capture_output=True, text=True, check=True
    )
    assert abs(float(out.stdout) - time.time()) < 3


@pytest.mark.slow
@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_a_shell_started_by_run_proxy_keeps_the_proxy_variables(
    shell: str, session_env: tuple[dict[str, str], EmulatorServer, Path], isolated_machine: Path
) -> None:
    """The hook must not swap the proxy's base URL and local key for a direct, expiring Google token."""
    argv, load, _status_var = SHELLS[shell]
    require_tool(argv[0])
    env, _emu, log = session_env
    lines = [
        load,
        'echo "$OPENAI_BASE_URL $OPENAI_API_KEY" > seen.txt',
        "true",
        "exit",
    ]
    run_in_pty(
        ["vertex-env", "run", "--proxy", "--google", "--", *argv], lines, env, isolated_machine
    )
    base_url, key = (isolated_machine / "seen.txt").read_text().split()
    assert f"http://{env['VERTEX_ENV_EMULATOR_HOST']}" not in base_url
    assert base_url.startswith("http://127.0.0.1:") and "/projects/test-project/" in base_url
    assert not key.startswith("ya29."), "the child holds the proxy's local key, not a Google token"
    assert [c for c in calls(log) if c.startswith("vertex-env export")] == []


# -- the installed hook: `vertex-env hook SHELL --install`, sourced from the rc file ------------------------


def install(shell: str, env: dict[str, str]) -> tuple[Path, str]:
    """Run the documented `hook SHELL --install` (through the shim); the file and the rc line it prints."""
    result = subprocess.run(
        ["vertex-env", "hook", shell, "--install"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "add this line to your rc file" in result.stderr
    target = Path(env["XDG_DATA_HOME"]) / "vertex-env" / f"hook.{shell}"
    assert target.is_file() and str(target) in result.stdout
    return target, result.stdout.strip()


def started_with(shell: str, rc_line: str, home: Path) -> tuple[list[str], dict[str, str]]:
    """The argv (and extra env) of an interactive `shell` whose start-up runs `rc_line`, as an rc file would."""
    if (
        shell == "bash"
    ):  # bash reads /etc/bash.bashrc, which sets PS1, before --rcfile: set ours again
        (home / "bashrc").write_text(f"PS1='{PROMPT}'\n{rc_line}\n")
        return ["bash", "--rcfile", str(home / "bashrc"), "--noprofile", "-i"], {}
    if shell == "zsh":
        zdot = home / "zdot"
        zdot.mkdir(exist_ok=True)
        (zdot / ".zshrc").write_text(rc_line + "\n")
        return ["zsh", "-d", "-i"], {"ZDOTDIR": str(zdot)}
    return ["fish", "--no-config", "-i", "--init-command", rc_line], {}


@pytest.mark.slow
@pytest.mark.parametrize("inherited", ["missing", "stale", "fresh"])
@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_an_installed_hook_starts_nothing_and_exports_only_when_the_variables_need_it(
    shell: str,
    inherited: str,
    session_env: tuple[dict[str, str], EmulatorServer, Path],
    isolated_machine: Path,
) -> None:
    """Start-up runs no process at all; the first prompt runs the one export, unless the variables the
    shell inherited are still fresh."""
    require_tool(shell)
    env, _emu, log = session_env
    env["VERTEX_ENV_HOOK_MARGIN"] = "60"
    _target, rc_line = install(shell, env)
    log.unlink()
    argv, extra = started_with(shell, rc_line, isolated_machine)
    env.update(extra)
    if inherited != "missing":
        expires = int(time.time()) + (3600 if inherited == "fresh" else 10)
        env.update(OPENAI_API_KEY="inherited", VERTEX_ENV_EXPIRES_AT=str(expires))
    run_in_pty(argv, ['echo "$OPENAI_API_KEY" > key.txt', "true", "exit"], env, isolated_machine)
    key = (isolated_machine / "key.txt").read_text().strip()
    fmt = "fish" if shell == "fish" else "sh"
    if inherited == "fresh":
        assert calls(log) == []
        assert key == "inherited"
    else:
        assert calls(log) == [f"vertex-env export --format {fmt}"]
        assert key.startswith("ya29.emu-")


@pytest.mark.slow
@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_an_installed_hook_rewrites_itself_once_after_an_upgrade(
    shell: str, session_env: tuple[dict[str, str], EmulatorServer, Path], isolated_machine: Path
) -> None:
    require_tool(shell)
    env, _emu, log = session_env
    env["VERTEX_ENV_HOOK_MARGIN"] = "60"
    target, rc_line = install(shell, env)
    # As an older release left it: another version line, and older than the program (pip rewrites the
    # console script at every install).
    target.write_text(target.read_text().replace("# vertex-env ", "# vertex-env 0.0.0-old ", 1))
    old = time.time() - 3600
    os.utime(target, (old, old))
    log.unlink()
    argv, extra = started_with(shell, rc_line, isolated_machine)
    env.update(extra)
    env.update(OPENAI_API_KEY="inherited", VERTEX_ENV_EXPIRES_AT=str(int(time.time()) + 3600))
    for _ in range(2):
        run_in_pty(argv, ['echo "$OPENAI_API_KEY" > key.txt', "exit"], env, isolated_machine)
        assert (isolated_machine / "key.txt").read_text().strip() == "inherited"
    assert calls(log) == [f"vertex-env hook {shell} --install"], "rewritten at the first start only"
    assert "0.0.0-old" not in target.read_text()


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_the_warning_says_the_program_is_gone(
    shell: str, session_env: tuple[dict[str, str], EmulatorServer, Path], isolated_machine: Path
) -> None:
    require_tool(shell)
    env, _emu, _log = session_env
    _target, rc_line = install(shell, env)
    program = isolated_machine / "shims" / "vertex-env"
    program.rename(program.with_name("vertex-env.uninstalled"))
    argv, extra = started_with(shell, rc_line, isolated_machine)
    env.update(extra)
    transcript = run_in_pty(argv, ["true", "true", "exit"], env, isolated_machine)
    assert transcript.count(f"could not refresh the token ({program}: command not found)") == 1


WEIRD = 'it\'s a "dir" with $HOME and `spaces`'


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "direnv"])
def test_the_hook_calls_vertex_env_by_its_absolute_path_whatever_characters_it_holds(
    shell: str, isolated_machine: Path
) -> None:
    """After the README's venv install vertex-env need not be on PATH: the hook names the program."""
    from vertex_env.cli.commands.hook import hook_text

    runner = "bash" if shell == "direnv" else shell
    require_tool(runner)
    program = isolated_machine / WEIRD / "vertex-env"
    program.parent.mkdir()
    program.write_text('#!/bin/sh\nprintf "%s\\n" "$0" "$@"\n')
    program.chmod(0o755)
    call = (
        "command $__vertex_env_cmd x" if shell == "fish" else 'command "${__vertex_env_cmd[@]}" x'
    )
    out = subprocess.run(
        [runner, "-c", hook_text(shell, [str(program)]) + "\n" + call],
        capture_output=True,
        text=True,
        env=dict(os.environ, PATH="/usr/bin:/bin"),
        check=True,
    ).stdout
    assert out.splitlines() == [str(program), "x"]


@pytest.mark.slow
def test_the_printed_hooks_and_unit_name_the_running_program() -> None:
    """`vertex-env hook …` run from a venv that is not on PATH names that venv's vertex-env."""
    exe = str(Path(sys.executable).parent / "vertex-env")
    for shell in ("bash", "zsh", "fish", "direnv", "launchd", "systemd"):
        out = subprocess.run(
            [exe, "hook", shell],
            capture_output=True,
            text=True,
            env=dict(os.environ, PATH="/usr/bin:/bin"),
            check=True,
        ).stdout
        assert exe in out, shell
    assert f"ExecStart={exe} daemon\n" in out
    assert "%h/.local/bin" not in out


def test_a_unit_quotes_a_path_systemd_or_launchd_would_split_or_expand() -> None:
    from vertex_env.cli.commands.hook import hook_text

    plist = hook_text("launchd", ["/opt/a&b/python3", "-m", "vertex_env"])
    assert "<string>/opt/a&amp;b/python3</string>\n        <string>-m</string>" in plist

    unit = hook_text("systemd", ["/opt/my tools/100%/vertex-env"])
    assert 'ExecStart="/opt/my tools/100%%/vertex-env" daemon\n' in unit


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "direnv"])
def test_the_hook_gives_its_export_a_short_deadline(shell: str, isolated_machine: Path) -> None:
    """A hung endpoint must not freeze the prompt for the default 20 s: VERTEX_ENV_HOOK_TIMEOUT, default 5."""
    from vertex_env.cli.commands.hook import hook_text

    runner = "bash" if shell == "direnv" else shell
    require_tool(runner)
    program = isolated_machine / "vertex-env"
    seen = isolated_machine / "timeout.txt"
    program.write_text(f'#!/bin/sh\necho "$VERTEX_ENV_TIMEOUT" >> {seen}\nexit 8\n')
    program.chmod(0o755)
    call = {
        "bash": "__vertex_env_hook",
        "zsh": "_vertex_env_hook",
        "fish": "__vertex_env_hook",
        "direnv": "log_error() { :; }; log_status() { :; }; watch_file() { :; }; use_vertex",
    }[shell]
    for hook_timeout, expected in ((None, "5"), ("2", "2")):
        seen.unlink(missing_ok=True)
        env = dict(os.environ)
        if hook_timeout:
            env["VERTEX_ENV_HOOK_TIMEOUT"] = hook_timeout
        subprocess.run(
            [runner, "-c", hook_text(shell, [str(program)]) + "\n" + call],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert (
            seen.read_text().splitlines()[0] == expected
        )  # the export (direnv then asks `cache path`)


def test_install_into_a_folder_that_cannot_be_made_is_one_line_and_exit_9(
    isolated_machine: Path,
) -> None:
    blocker = isolated_machine / "not-a-dir"
    blocker.write_text("")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "vertex-env"), "hook", "zsh", "--install"],
        capture_output=True,
        text=True,
        env=dict(os.environ, XDG_DATA_HOME=str(blocker)),
    )
    assert result.returncode == 9
    assert result.stderr.startswith("vertex-env: error: cannot write the hook file ")
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""


@pytest.mark.parametrize("shell", ["systemd", "launchd"])
def test_a_control_character_in_the_program_path_is_refused_in_a_unit(
    tmp_path: Path, shell: str
) -> None:
    """A newline in the path of vertex-env would add a line of its own to the unit (`ExecStartPre=...`)."""
    folder = tmp_path / "bin\nExecStartPre=evil"
    folder.mkdir()
    program = folder / "vertex-env"
    program.write_bytes((Path(sys.executable).parent / "vertex-env").read_bytes())
    program.chmod(0o755)
    result = subprocess.run([str(program), "hook", shell], capture_output=True, text=True)
    assert result.returncode == 9, result.stderr
    assert result.stdout == ""
    assert "control character" in result.stderr and len(result.stderr.splitlines()) == 1
    # A path without one is written as it is.
    good = subprocess.run(
        [str(Path(sys.executable).parent / "vertex-env"), "hook", shell],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0 and "vertex-env" in good.stdout

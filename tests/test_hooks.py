"""Prompt hooks in real interactive bash, zsh and fish sessions (each on a pseudo-terminal).

A shim `vertex-env` and a shim `date` first on PATH log every call: a prompt with a fresh token starts no
process at all, and a prompt near expiry re-exports exactly once.
"""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
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


def run_in_pty(
    argv: list[str], lines: list[str], env: dict[str, str], cwd: Path, timeout: float = 40
) -> str:
    """Type `lines` into an interactive shell on a pseudo-terminal; return the transcript once it exits."""
    master, slave = os.openpty()

    def controlling_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=controlling_terminal,
    )
    os.close(slave)
    transcript = b""
    deadline = time.monotonic() + timeout

    def drain(wait: float) -> None:
        nonlocal transcript
        while True:
            ready, _, _ = select.select([master], [], [], wait)
            if not ready:
                return
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            transcript += data

    try:
        for line in lines:
            os.write(master, line.encode() + b"\n")
            drain(0.4)
        while proc.poll() is None and time.monotonic() < deadline:
            drain(0.2)
        drain(0.1)
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
    real = Path(sys.executable).parent / "vertex-env"
    shims = isolated_machine / "shims"
    shims.mkdir()
    log = isolated_machine / "calls.log"
    (shims / "vertex-env").write_text(
        f'#!/bin/sh\necho "vertex-env $*" >> {log}\nexec {real} "$@"\n'
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
    from vertex_env.commands.hook import hook_text

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
    from vertex_env.commands.hook import hook_text

    script = hook_text("fish") + "\n__vertex_env_now\n"
    out = subprocess.run(
        ["fish", "--no-config", "-c", script], capture_output=True, text=True, check=True
    )
    assert abs(float(out.stdout) - time.time()) < 3


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

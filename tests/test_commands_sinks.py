"""`vertex-env write` and `vertex-env run` end to end: the real emulator, real python-dotenv, a real openai child."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from vertex_env.cli.group import main
from vertex_env.emulator import EmulatorServer, write_authorized_user

VENV_BIN = str(Path(sys.executable).parent)


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch, isolated_machine: Path) -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", server.host_port)
        monkeypatch.setenv("VERTEX_ENV_PROJECT", "test-project")
        monkeypatch.setenv(
            "GOOGLE_APPLICATION_CREDENTIALS",
            str(write_authorized_user(isolated_machine / "adc.json")),
        )
        monkeypatch.setenv("PATH", f"{VENV_BIN}:{os.environ.get('PATH', '')}")
        yield server


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["vertex-env", *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def test_write_sets_the_variables_and_keeps_every_other_line(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    from dotenv import dotenv_values

    path = isolated_machine / ".env"
    original = "# my app\r\nDEBUG=1\r\nexport OPENAI_API_KEY=stale\r\n\r\nNAME='x y'\r\n"
    path.write_bytes(original.encode())
    path.chmod(0o640)
    assert main(["write", str(path), "--google"]) == 0
    text = path.read_bytes().decode()
    lines = text.split("\r\n")
    assert lines[0:2] == ["# my app", "DEBUG=1"] and lines[3:5] == ["", "NAME='x y'"]
    assert lines[2].startswith("export OPENAI_API_KEY=ya29.emu-")
    values = dotenv_values(path)
    assert emu.state.lookup_token(values["OPENAI_API_KEY"] or "") is not None
    assert values["GOOGLE_CLOUD_PROJECT"] == "test-project"
    assert (
        values["OPENAI_BASE_URL"]
        == f"http://{emu.host_port}/v1/projects/test-project/locations/us-central1/endpoints/openapi"
    )
    assert path.stat().st_mode & 0o777 == 0o600, (
        "a group-readable file holding a token is tightened"
    )


def test_write_tightens_a_0644_file_and_says_so_once(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    path = isolated_machine / ".env"
    path.write_text("DEBUG=1\n")
    path.chmod(0o644)  # what `echo X=1 > .env` makes under umask 022
    first = cli("write", str(path))
    assert first.returncode == 0, first.stderr
    assert path.stat().st_mode & 0o777 == 0o600
    assert first.stderr.count("was mode 0644, readable by others") == 1
    assert "now 0600" in first.stderr
    second = cli("write", str(path))
    assert second.returncode == 0, second.stderr
    assert "readable by others" not in second.stderr


def test_write_refuses_a_file_of_another_user_and_leaves_it_untouched(
    emu: EmulatorServer, isolated_machine: Path, second_user: tuple[int, int]
) -> None:
    uid, gid = second_user
    path = isolated_machine / ".env"
    path.write_text("DEBUG=1\n")
    path.chmod(0o644)
    os.chown(path, uid, gid)
    before = path.stat()
    result = cli("write", str(path))
    assert result.returncode == 9, result.stderr
    assert "belongs to another user" in result.stderr and "Traceback" not in result.stderr
    assert path.read_text() == "DEBUG=1\n"
    after = path.stat()
    assert (after.st_mode, after.st_uid, after.st_ino) == (before.st_mode, uid, before.st_ino)
    assert "ya29" not in result.stderr


def test_write_creates_new_files_private(emu: EmulatorServer, isolated_machine: Path) -> None:
    assert main(["write", "new.env"]) == 0
    assert (isolated_machine / "new.env").stat().st_mode & 0o777 == 0o600


def test_write_failure_leaves_the_file_untouched(
    isolated_machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = isolated_machine / ".env"
    path.write_text("KEEP=1\n")
    assert (
        main(["write", str(path), "--project", "test-project", "--credentials", "missing.json"])
        == 5
    )
    assert path.read_text() == "KEEP=1\n"
    assert list(isolated_machine.glob(".env*")) == [path]


CHILD = textwrap.dedent(
    """
    import os, sys, openai
    client = openai.OpenAI(max_retries=0)
    reply = client.chat.completions.create(model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "ping"}])
    chunks = client.chat.completions.create(model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "stream"}], stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    print(reply.choices[0].message.content, "|", streamed, "|", os.environ["VERTEX_ENV_ACTIVE"])
    sys.exit(7)
    """
)


@pytest.mark.slow
def test_run_execs_a_real_openai_client_with_the_variables(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    script = isolated_machine / "app.py"
    script.write_text(CHILD)
    env = dict(os.environ, OPENAI_API_KEY="stale-key", OPENAI_BASE_URL="https://api.openai.com/v1")
    result = cli("run", "--", sys.executable, str(script), env=env)
    assert result.returncode == 7, result.stderr
    assert result.stdout.strip() == "Emulated reply to: ping | Emulated reply to: stream | 1"
    assert emu.state.stats()["chat_ok"] == 2


def test_run_the_token_is_never_in_argv(emu: EmulatorServer, isolated_machine: Path) -> None:
    script = isolated_machine / "argv.py"
    script.write_text(
        "import os\nprint(open(f'/proc/{os.getpid()}/cmdline').read().replace(chr(0), ' '))\nprint(os.environ['OPENAI_API_KEY'])\n"
    )
    result = cli("run", "--", sys.executable, str(script))
    cmdline, token = result.stdout.splitlines()
    assert token.startswith("ya29.emu-") and token not in cmdline


@pytest.mark.parametrize(
    ("command", "code", "phrase"),
    [
        (["no-such-program-xyz"], 127, "no-such-program-xyz"),
        (["./not-executable.sh"], 126, "not-executable.sh"),
    ],
)
def test_run_reports_missing_and_unexecutable_commands(
    command: list[str], code: int, phrase: str, emu: EmulatorServer, isolated_machine: Path
) -> None:
    (isolated_machine / "not-executable.sh").write_text("echo hi\n")
    result = subprocess.run(
        ["vertex-env", "run", "--", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=isolated_machine,
    )
    assert result.returncode == code
    assert phrase in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_run_inside_run_refuses_unless_forced(emu: EmulatorServer) -> None:
    nested = cli("run", "--", "vertex-env", "run", "--", "true")
    assert nested.returncode == 13 and "--force" in nested.stderr
    forced = cli("run", "--", "vertex-env", "run", "--force", "--", "true")
    assert forced.returncode == 0, forced.stderr


@pytest.mark.slow
def test_run_without_a_command_starts_shell(emu: EmulatorServer, isolated_machine: Path) -> None:
    shell = isolated_machine / "fake-shell"
    shell.write_text('#!/bin/sh\necho "shell with ${OPENAI_API_KEY%%-*}"\n')
    shell.chmod(0o755)
    result = cli("run", env=dict(os.environ, SHELL=str(shell)))
    assert result.stdout.strip() == "shell with ya29.emu", result.stderr


def test_the_variable_options_have_one_environment_variable_for_every_command(
    emu: EmulatorServer,
    isolated_machine: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dotenv import dotenv_values

    monkeypatch.setenv("VERTEX_ENV_GOOGLE", "1")
    monkeypatch.setenv("VERTEX_ENV_LEGACY", "true")
    assert main(["write", "g.env"]) == 0
    assert set(dotenv_values(isolated_machine / "g.env")) >= {
        "GOOGLE_CLOUD_PROJECT",
        "OPENAI_API_BASE",
    }
    monkeypatch.setenv("VERTEX_ENV_FORMAT", "json")
    assert main(["export"]) == 0
    assert "GOOGLE_CLOUD_LOCATION" in capsys.readouterr().out
    monkeypatch.setenv("VERTEX_ENV_FORMAT", "klingon")
    assert main(["export"]) == 2, "an unknown format is a usage error, not a silent fallback"

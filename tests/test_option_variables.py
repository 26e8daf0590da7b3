"""One option mechanism: `serve`'s and `emulator`'s options are rows of the option table like every other, so a
bad value names where it came from — the variable when it came from one, never a flag the user did not type."""

from __future__ import annotations

from pathlib import Path

import pytest

import vertex_env
from vertex_env.cli.group import main
from vertex_env.config import options as option_table


@pytest.mark.parametrize(
    ("command", "variable", "bad", "says"),
    [
        ("serve", "VERTEX_ENV_PROXY_PORT", "abc", "invalid port 'abc'"),
        ("serve", "VERTEX_ENV_PROXY_PORT", "70000", "invalid port 70000"),
        ("serve", "VERTEX_ENV_PROXY_LOG_FORMAT", "xml", "invalid log format 'xml'"),
        ("serve", "VERTEX_ENV_PROXY_DRAIN_TIMEOUT", "soon", "invalid drain timeout 'soon'"),
        ("serve", "VERTEX_ENV_PROXY_DRAIN_TIMEOUT", "nan", "invalid drain timeout 'nan'"),
        (
            "serve",
            "VERTEX_ENV_PROXY_KEY_FILE",
            "/no/such/key",
            "invalid file '/no/such/key': it does not exist",
        ),
        ("serve", "VERTEX_ENV_PROXY_WRITE_ENV", "/", "invalid file '/': it is a directory"),
        ("emulator", "VERTEX_ENV_EMULATOR_PORT", "abc", "invalid port 'abc'"),
        ("emulator", "VERTEX_ENV_EMULATOR_EXPIRES_IN", "0", "invalid token lifetime '0'"),
    ],
)
def test_a_bad_variable_is_a_usage_error_naming_the_variable(
    command: str,
    variable: str,
    bad: str,
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, bad)
    assert main([command]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"vertex-env: error: {says}")
    assert lines[0].endswith(f"(from env {variable})")
    flag = next(opt.flag for opt in option_table.ALL_OPTIONS if opt.env == variable)
    assert flag not in lines[0]


def test_a_bad_flag_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "abc"]) == 2
    assert capsys.readouterr().err == (
        "vertex-env: error: invalid port 'abc': expected a number from 0 to 65535 (from flag --port)\n"
    )


def test_a_flag_wins_over_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bad variable is never read when the flag is given (flag > VERTEX_ENV_*)."""
    monkeypatch.setenv("VERTEX_ENV_EMULATOR_EXPIRES_IN", "0")
    assert main(["emulator", "--expires-in", "1", "--port", "abc"]) == 2
    assert "(from flag --port)" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["serve", "emulator"])
def test_help_shows_each_variable(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())  # click wraps long names across lines
    kind = option_table.SERVE if command == "serve" else option_table.EMULATOR
    rows = [opt for opt in option_table.ALL_OPTIONS if opt.kind == kind]
    assert rows
    for opt in rows:
        assert opt.flag in shown and opt.env in shown, opt


def test_no_command_reads_a_variable_through_click() -> None:
    commands = Path(vertex_env.__file__).parent / "cli"
    assert [p.name for p in sorted(commands.rglob("*.py")) if "envvar=" in p.read_text()] == []

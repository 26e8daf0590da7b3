"""`vertex-env status`: the report built by the core (vertex_env.sinks.status) and printed by the command."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import start_emulator

import vertex_env
from vertex_env.emulator import EmulatorServer

PACKAGE = Path(vertex_env.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (lazy imports inside functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            names.add("importlib.import_module")
    return names


#: The command layer and above: the cli package (click group, entry point, commands) and __main__.py.
TOP = {"cli", "__main__.py"}
CORE = sorted(
    path for path in PACKAGE.rglob("*.py") if path.relative_to(PACKAGE).parts[0] not in TOP
)


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_modules_take_nothing_from_the_command_layer(path: Path) -> None:
    upward = {
        name
        for name in imported_modules(path)
        if name.startswith(("vertex_env.cli.commands", "vertex_env.cli.group"))
    }
    assert not upward, f"{path.name} reaches up into {sorted(upward)}"


def test_the_status_core_has_no_click_and_the_command_imports_it_plainly() -> None:
    core = imported_modules(PACKAGE / "sinks" / "status.py")
    assert not {name for name in core if name.split(".")[0] == "click"}
    assert "vertex_env.sinks.daemon" in core
    command = imported_modules(PACKAGE / "cli" / "commands" / "status.py")
    assert "importlib.import_module" not in command and "importlib" not in command
    assert "vertex_env.sinks.status.collect" in command


def test_collect_takes_an_environment_and_returns_the_report(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    import os

    from vertex_env.environment import resolve
    from vertex_env.sinks.status import collect

    env = resolve(environ={**os.environ, "VERTEX_ENV_LOCATION": "europe-west4"})
    report, error = collect(env)
    assert error is None
    assert report["values"]["location"] == {
        "value": "europe-west4",
        "source": "env VERTEX_ENV_LOCATION",
    }
    assert report["token"]["remaining_seconds"] > 3000
    token = env.token()
    assert token.value not in repr(report)
    assert report["daemon"]["running"] is False


LABEL_WIDTH = len("quota_project: ")


def status_text(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from vertex_env.cli.group import main

    code = main(["status", *args])
    return code, capsys.readouterr().out


def test_status_rows_are_never_blank_and_share_one_label_column(
    emu: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = status_text(capsys)
    assert code == 0
    rows = out.splitlines()
    assert len(rows) >= 15
    for row in rows:
        label, _, _ = row.partition(":")
        assert len(label) < LABEL_WIDTH - 1, row
        assert row[len(label) + 1 : LABEL_WIDTH].strip() == "", f"label column not aligned: {row!r}"
        assert row[LABEL_WIDTH : LABEL_WIDTH + 1].strip(), f"blank or misaligned value: {row!r}"
    assert "host:          (default: from the location)" in rows
    assert "quota_project: (none)" in rows


def test_status_names_the_keyring_backend_as_a_person_knows_it(
    emu: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from vertex_env.core.keyring_store import backend_name
    from vertex_env.sinks.status import keyring_label

    _, out = status_text(capsys)
    assert "keyring.backends." not in out
    assert f"keyring:       {keyring_label(backend_name())}" in out.splitlines()
    assert keyring_label("keyring.backends.fail.Keyring").startswith("none usable")
    assert keyring_label("keyring.backends.macOS.Keyring") == "macOS Keychain"


def test_status_says_everything_goes_to_the_emulator(
    emu: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = status_text(capsys)
    assert code == 0
    assert f"goes to the emulator at {emu.host_port}" in out


def test_an_unreachable_emulator_is_named_as_such_not_as_google(
    monkeypatch: pytest.MonkeyPatch, isolated_machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    server = start_emulator(monkeypatch, isolated_machine)
    server.stop()
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", dead)
    monkeypatch.setenv("VERTEX_ENV_TIMEOUT", "3")
    code, out = status_text(capsys)
    assert code == 8
    token_row = next(row for row in out.splitlines() if row.startswith("token:"))
    assert f"could not reach the emulator at {dead}" in token_row
    assert "reach Google" not in token_row


def test_with_no_credential_anywhere_status_does_not_name_the_metadata_server_as_the_credential(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No ADC file, no GOOGLE_APPLICATION_CREDENTIALS, no metadata server (NO_GCE_CHECK): nothing was found."""
    import json

    monkeypatch.setenv("VERTEX_ENV_PROJECT", "test-project")
    code, out = status_text(capsys)
    assert code == 4  # no credentials (README's exit codes)
    rows = out.splitlines()
    assert "credential:    (none found: see token)" in rows
    assert not any(row.startswith("principal:") for row in rows)
    assert any(row.startswith("token:") and "no Google credentials found" in row for row in rows)
    code, out = status_text(capsys, "--json")
    assert code == 4
    assert json.loads(out)["credential"] is None

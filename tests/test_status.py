"""`vertex-env status`: the report built by the core (vertex_env.status) and printed by the command."""

from __future__ import annotations

import ast
from collections.abc import Iterator
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


#: Above the command layer: the click group and the console script's entry point (fast.py, __main__.py).
TOP = {"cli.py", "fast.py", "__main__.py"}
CORE = sorted(
    path
    for path in PACKAGE.rglob("*.py")
    if path.relative_to(PACKAGE).parts[0] not in {*TOP, "commands"}
)


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_modules_take_nothing_from_the_command_layer(path: Path) -> None:
    upward = {
        name
        for name in imported_modules(path)
        if name.startswith(("vertex_env.commands", "vertex_env.cli"))
    }
    assert not upward, f"{path.name} reaches up into {sorted(upward)}"


def test_the_status_core_has_no_click_and_the_command_imports_it_plainly() -> None:
    core = imported_modules(PACKAGE / "status.py")
    assert not {name for name in core if name.split(".")[0] == "click"}
    assert "vertex_env.daemon.daemon_status" in core
    command = imported_modules(PACKAGE / "commands" / "status.py")
    assert "importlib.import_module" not in command and "importlib" not in command
    assert "vertex_env.status.collect" in command


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch, isolated_machine: Path) -> Iterator[EmulatorServer]:
    server = start_emulator(monkeypatch, isolated_machine, expires_in=3600)
    yield server
    server.stop()


def test_collect_takes_an_environment_and_returns_the_report(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    import os

    from vertex_env.environment import resolve
    from vertex_env.status import collect

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

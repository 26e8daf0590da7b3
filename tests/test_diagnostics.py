"""One diagnostics channel: every module logs through `logging`, the CLI installs the one stderr handler for
its run, and `serve --log-format json` only swaps that handler's formatter."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

import vertex_env
from vertex_env.cli.group import main
from vertex_env.system import diagnostics

PACKAGE = Path(vertex_env.__file__).parent


def _second_channels(path: Path) -> list[str]:
    """Every way to stderr that is not `logging` in one module: print(file=…), sys.stderr.write,
    click.echo/secho(err=True), a swappable debug sink."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call):
            func = node.func
            keywords = {k.arg for k in node.keywords}
            if isinstance(func, ast.Name) and func.id == "print" and "file" in keywords:
                found.append(f"{where} print(file=…)")
            if isinstance(func, ast.Attribute):
                if func.attr in ("echo", "secho") and "err" in keywords:
                    found.append(f"{where} click.{func.attr}(err=…)")
                target = func.value
                if (
                    func.attr == "write"
                    and isinstance(target, ast.Attribute)
                    and target.attr in ("stderr", "__stderr__")
                ):
                    found.append(f"{where} sys.stderr.write")
        if isinstance(node, ast.Name | ast.Attribute) and "debug_sink" in ast.unparse(node):
            found.append(f"{where} debug_sink")
    return found


def test_no_module_writes_diagnostics_around_logging() -> None:
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in _second_channels(path)]
    assert found == []


def test_the_scan_finds_each_second_channel(tmp_path: Path) -> None:
    """The scan above cannot pass by finding nothing: each form it forbids is found in a planted module."""
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import sys, click\n"
        "print('x', file=sys.stderr)\n"
        "sys.stderr.write('x')\n"
        "click.echo('x', err=True)\n"
        "transport.debug_sink = None\n"
    )
    found = _second_channels(planted)
    assert [hit.split(" ", 1)[1] for hit in found] == [
        "print(file=…)",
        "sys.stderr.write",
        "click.echo(err=…)",
        "debug_sink",
    ]


def _record(level: int, text: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("vertex_env.x", level, __file__, 1, text, None, None)
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize(
    ("level", "extra", "line"),
    [
        (logging.WARNING, {}, "vertex-env: warning: text"),
        (logging.ERROR, {"speaker": "vertex-env"}, "vertex-env: error: text"),
        (logging.INFO, {}, "vertex-env: text"),
        (logging.DEBUG, {}, "vertex-env: debug: text"),
        (logging.INFO, {"speaker": "vertex-env emulator"}, "vertex-env emulator: text"),
        (logging.INFO, {"speaker": ""}, "text"),
        (logging.WARNING, {"speaker": ""}, "warning: text"),
        (logging.WARNING, {"speaker": None}, "text"),
    ],
)
def test_a_record_becomes_one_line(level: int, extra: dict[str, object], line: str) -> None:
    assert diagnostics.LineFormatter().format(_record(level, "text", **extra)) == line


def test_serve_speaks_as_itself_unless_a_record_names_its_speaker() -> None:
    serve = diagnostics.LineFormatter("vertex-env serve")
    assert serve.format(_record(logging.WARNING, "x")) == "vertex-env serve: warning: x"
    assert serve.format(_record(logging.DEBUG, "x", speaker="vertex-env")) == "vertex-env: debug: x"


def test_the_cli_installs_its_handler_for_the_run_only(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger(diagnostics.ROOT)
    before = (list(root.handlers), root.level)
    assert main(["profile", "default", "no-such-profile"]) != 0
    assert capsys.readouterr().err.startswith("vertex-env: error: ")
    assert (list(root.handlers), root.level) == before

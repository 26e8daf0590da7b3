"""Every non-Python code block of the README and of the docs pages (docs/*.md) runs as written (against the
emulator), or says why it cannot here.

The line before each fenced block that is not ```python carries a marker (an HTML comment, invisible on GitHub):

    <!-- run: bash -->                       the whole block is one `bash -e` script
    <!-- run: bash, zsh, fish -->            one shell per line, in order (`skip(reason)` for a line that cannot run)
    <!-- not run: reason -->                 the block is not runnable here (a reason is required)

Python blocks are run by tests/test_readme_examples.py. Blocks run in an isolated HOME whose Google is the emulator,
with `python` and `vertex-env` of this interpreter's environment first on PATH, and in the working folder the
`app.py` the docs show (the ```python block after a `<!-- app.py: ... -->` line): it asks the model one question
through the openai SDK.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_tool, start_emulator

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md"))]
CI_RUN = REPO / ".ci" / "run"
_FENCE = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```\n", re.S | re.M)
_MARKER = re.compile(r"<!-- (?P<kind>run|not run): (?P<what>.+?) -->\Z")
_SKIP = re.compile(r"skip\((?P<reason>[^)]+)\)\Z")
SHELLS = {
    "bash": ["bash", "-e", "-c"],
    "zsh": ["zsh", "-e", "-c"],
    # a line meant for a ~/.zshrc that has set up completion (compinit defines compdef); the line is $0
    "zsh-after-compinit": ["zsh", "-e", "-c", 'autoload -Uz compinit && compinit -u && eval "$0"'],
    "fish": ["fish", "-c"],
}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    body: str
    marker: str | None

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def blocks(path: Path = README) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        found.append(
            Block(
                path,
                line,
                match["lang"],
                match["body"],
                before if before.startswith("<!--") else None,
            )
        )
    return found


ALL_BLOCKS = [block for path in DOCS for block in blocks(path)]
NOT_PYTHON = [block for block in ALL_BLOCKS if block.lang != "python"]


def shown_app() -> str:
    """The app.py the docs show: the blocks that run `python app.py` run this file."""
    shown = [
        block.body
        for block in ALL_BLOCKS
        if block.lang == "python" and (block.marker or "").startswith("<!-- app.py:")
    ]
    assert len(shown) == 1, (
        f"one ```python block after a `<!-- app.py: ... -->` line, found {len(shown)}"
    )
    return shown[0]


def _runnable() -> list[Block]:
    out = []
    for block in NOT_PYTHON:
        match = _MARKER.match(block.marker or "")
        if match and match["kind"] == "run":
            out.append(block)
    return out


def test_the_readme_has_shell_blocks_to_check() -> None:
    assert len(NOT_PYTHON) >= 15
    assert len(_runnable()) >= 8, "most of the README's commands run here"
    assert any(block.path == README for block in _runnable()), "the README's own tour runs here"
    assert {block.path for block in NOT_PYTHON} > {README}, "the docs pages' blocks are checked too"


def test_the_docs_show_the_app_py_they_run() -> None:
    app = shown_app()
    compile(app, "app.py", "exec")
    assert "openai" in app
    assert any("python app.py" in block.body for block in _runnable())


@pytest.mark.parametrize("block", NOT_PYTHON, ids=lambda block: block.name)
def test_every_block_is_run_or_says_why_not(block: Block) -> None:
    match = _MARKER.match(block.marker or "")
    assert match, (
        f"{block.name}: put `<!-- run: SHELL -->` or `<!-- not run: REASON -->` on the line before the block"
    )
    if match["kind"] == "run":
        shells = _shells(match)
        lines = _lines(block)
        if len(shells) > 1:
            assert len(shells) == len(lines), (
                f"{block.name}: {len(shells)} shells named for {len(lines)} lines"
            )
        for shell in shells:
            assert shell in SHELLS or _SKIP.match(shell), f"{block.name}: unknown shell {shell!r}"
    else:
        assert len(match["what"]) >= 10, f"{block.name}: say why the block cannot run here"


def test_ci_runs_the_two_newcomer_commands_verbatim() -> None:
    """The README's first two commands are what .ci/run executes on a fresh machine (not this suite)."""
    first, second = (block.body.strip() for block in blocks()[:2])
    ci = CI_RUN.read_text(encoding="utf-8")
    assert second in ci.splitlines()
    assert first in ci, (
        ".ci/run also runs the first command (install + demo), in a copy of the checkout"
    )


def _shells(marker: re.Match[str]) -> list[str]:
    """The shells a `run:` marker names, in order."""
    return [part.strip() for part in marker["what"].split(",")]


def _lines(block: Block) -> list[str]:
    return [line for line in block.body.splitlines() if line.strip()]


@pytest.fixture
def readme_machine(
    isolated_machine: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[dict[str, str]]:
    server = start_emulator(monkeypatch, tmp_path)
    bin_dir = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ.get("PATH", ""))
    (isolated_machine / "app.py").write_text(shown_app())
    try:
        yield dict(os.environ)
    finally:
        server.stop()


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run in its own session, then stop whatever it left in the background (an emulator started with `&`).

    Output goes to a file: a background job keeps inherited pipes open long after the script is done."""
    with open(cwd / ".readme-block.err", "w+", encoding="utf-8") as err:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
        try:
            code = process.wait(timeout=120)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        err.seek(0)
        return code, err.read()


@pytest.mark.slow
@pytest.mark.parametrize("block", _runnable(), ids=lambda block: block.name)
def test_block_runs_as_written(
    block: Block, readme_machine: dict[str, str], isolated_machine: Path
) -> None:
    match = _MARKER.match(block.marker or "")
    assert match
    shells = _shells(match)
    steps = (
        [(shells[0], block.body)]
        if len(shells) == 1
        else list(zip(shells, _lines(block), strict=True))
    )
    ran = 0
    for shell, script in steps:
        if _SKIP.match(shell):
            continue
        require_tool(SHELLS[shell][0])
        if "direnv " in script:
            require_tool("direnv")
        code, stderr = _run([*SHELLS[shell], script], readme_machine, isolated_machine)
        assert code == 0, f"{block.name} in {shell}:\n{script}\n{stderr}"
        assert "Traceback" not in stderr, stderr
        ran += 1
    assert ran, f"{block.name}: every line is skipped; mark the block `not run` instead"

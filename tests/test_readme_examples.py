"""Every Python example of the README runs, as written, against the emulator."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from vertex_env.testing import OfflineVertex

DOCS = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    return _BLOCK.findall(path.read_text(encoding="utf-8"))


BLOCKS = python_blocks(DOCS)


def test_the_docs_have_examples() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_runs_offline(
    index: int, vertex_env_offline: OfflineVertex, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace: dict[str, Any] = {"__name__": f"docs_example_{index}"}
    exec(compile(BLOCKS[index], f"{DOCS.name}[{index}]", "exec"), namespace)
    for name, value in list(
        namespace.items()
    ):  # an example that is a test: run it with the fixture
        if name.startswith("test_") and callable(value):
            value(vertex_env_offline)
    assert (
        vertex_env_offline.emulator.chat_rejected <= 1
    )  # at most the one a test expired on purpose
    if "print(" in BLOCKS[index]:
        assert capsys.readouterr().out.strip()


# The import a Python example needs beyond vertex-env itself, and the extra that installs it.
_EXTRA_FOR = {"openai": "openai", "httpx": "httpx"}


def _section_before(text: str, block: str) -> str:
    """The README text from the heading above `block` down to it."""
    start = text.index(block)
    heading = max(text.rfind("\n## ", 0, start), text.rfind("\n### ", 0, start))
    return text[heading:start]


def _imports(block: str) -> set[str]:
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(block)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_names_the_extra_that_installs_its_imports(index: int) -> None:
    """After `pip install 'vertex-env[openai]'` (the section's install line) every import of an example resolves:
    a package only another extra brings is named, with its extra, in the example's own section."""
    text = DOCS.read_text(encoding="utf-8")
    python_api = text[text.index("\n## Python API") :]
    install_line = re.search(r"pip install '(vertex-env\[[a-z,]+\])'", python_api)
    assert install_line, "the Python API section starts with an install line"
    section = _section_before(text, BLOCKS[index])
    named = {install_line[1], *re.findall(r"vertex-env\[[a-z,]+\]", section)}
    extras = {extra for name in named for extra in name[len("vertex-env[") : -1].split(",")}
    for module in sorted(_imports(BLOCKS[index]) & set(_EXTRA_FOR)):
        assert _EXTRA_FOR[module] in extras, (
            f"example {index} imports {module}: say `pip install 'vertex-env[{_EXTRA_FOR[module]}]'` in its section"
        )

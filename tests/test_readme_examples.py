"""Every Python example of the README and of the docs pages (docs/*.md) runs, as written, against the emulator."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from vertex_env.testing import OfflineVertex

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: The page whose first lines install the Python API's extra.
PYTHON_API = REPO / "docs" / "python.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    return _BLOCK.findall(path.read_text(encoding="utf-8"))


#: (page, example): every Python example of every page, in order.
BLOCKS = [(path, block) for path in DOCS for block in python_blocks(path)]


def _name(index: int) -> str:
    path, block = BLOCKS[index]
    return f"{path.relative_to(REPO)}[{[b for p, b in BLOCKS if p == path].index(block)}]"


def test_the_docs_have_examples() -> None:
    assert len(BLOCKS) >= 5
    assert any(path == PYTHON_API for path, _ in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=_name)
def test_example_runs_offline(
    index: int, vertex_env_offline: OfflineVertex, capsys: pytest.CaptureFixture[str]
) -> None:
    _, block = BLOCKS[index]
    namespace: dict[str, Any] = {"__name__": f"docs_example_{index}"}
    exec(compile(block, _name(index), "exec"), namespace)
    for name, value in list(
        namespace.items()
    ):  # an example that is a test: run it with the fixture
        if name.startswith("test_") and callable(value):
            value(vertex_env_offline)
    assert (
        vertex_env_offline.emulator.chat_rejected <= 1
    )  # at most the one a test expired on purpose
    if "print(" in block:
        assert capsys.readouterr().out.strip()


# The import a Python example needs beyond vertex-env itself, and the extra that installs it.
_EXTRA_FOR = {"openai": "openai", "httpx": "httpx"}


def _section_before(text: str, block: str) -> str:
    """The page's text from the heading above `block` down to it."""
    start = text.index(block)
    heading = max(
        text.rfind("\n# ", 0, start), text.rfind("\n## ", 0, start), text.rfind("\n### ", 0, start)
    )
    return text[max(heading, 0) : start]


def _imports(block: str) -> set[str]:
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(block)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=_name)
def test_example_names_the_extra_that_installs_its_imports(index: int) -> None:
    """After `pip install 'vertex-env[openai]'` (the Python API page's install line) every import of an example
    resolves: a package only another extra brings is named, with its extra, in the example's own section."""
    path, block = BLOCKS[index]
    python_api = PYTHON_API.read_text(encoding="utf-8")
    install_line = re.search(
        r"pip install '(vertex-env\[[a-z,]+\])(?: @ git\+https://[^']+)?'", python_api
    )
    assert install_line, "the Python API page starts with an install line"
    assert python_api.index(install_line[0]) < python_api.index("```python"), (
        "before its first example"
    )
    section = _section_before(path.read_text(encoding="utf-8"), block)
    named = {install_line[1], *re.findall(r"vertex-env\[[a-z,]+\]", section)}
    extras = {extra for name in named for extra in name[len("vertex-env[") : -1].split(",")}
    for module in sorted(_imports(block) & set(_EXTRA_FOR)):
        assert _EXTRA_FOR[module] in extras, (
            f"example {index} imports {module}: say `pip install 'vertex-env[{_EXTRA_FOR[module]}]'` in its section"
        )

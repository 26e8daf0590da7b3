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

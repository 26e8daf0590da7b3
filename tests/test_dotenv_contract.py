"""The contract vertex_env.sinks.dotenv_file relies on in python-dotenv's parser (`dotenv.parser.parse_stream`):
if a new python-dotenv changes any of it, these fail loudly here rather than a rewrite of someone's .env
silently losing or mangling lines.

What the rewrite uses: every Binding's `original.string`, concatenated, is the input byte for byte (blank lines,
comments, `export `, CRLF, quotes and lines it cannot read included); `original.line` is the 1-based line the
binding's text starts on (leading blank lines and comments are part of the next binding's text); `key` and
`value` are the unquoted name and value (`export ` dropped); `error` marks text it could not read — a line
that is not a binding, a quote never closed — with no key; a quoted value may run over lines, as one binding.
"""

from __future__ import annotations

import io

import pytest
from dotenv.parser import parse_stream

#: (text, [(key, value, original, line, error), ...]) as python-dotenv reads it.
CASES = [
    ("A=1\n", [("A", "1", "A=1\n", 1, False)]),
    ("A=1", [("A", "1", "A=1", 1, False)]),
    (
        "\n\n# c\nexport B='x y'\r\n",
        [(None, None, "\n\n# c\n", 1, False), ("B", "x y", "export B='x y'\r\n", 4, False)],
    ),
    ('C="multi\nline"\n', [("C", "multi\nline", 'C="multi\nline"\n', 1, False)]),
    (
        "D='open\nE=5\n",
        [(None, None, "D='open\n", 1, True), ("E", "5", "E=5\n", 2, False)],
    ),
    ("bad line\nF=6", [(None, None, "bad line\n", 1, True), ("F", "6", "F=6", 2, False)]),
    ("G = 7 # note\n", [("G", "7", "G = 7 # note\n", 1, False)]),
    ("H=\n", [("H", "", "H=\n", 1, False)]),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[repr(c[0]) for c in CASES])
def test_python_dotenv_reads_each_binding_as_the_rewrite_expects(
    text: str, expected: list[tuple[str | None, str | None, str, int, bool]]
) -> None:
    bindings = list(parse_stream(io.StringIO(text)))
    seen = [(b.key, b.value, b.original.string, b.original.line, b.error) for b in bindings]
    assert seen == expected
    assert "".join(b.original.string for b in bindings) == text


def test_the_originals_are_lossless_for_a_messy_file() -> None:
    text = (
        "not-a-binding\n"
        "  # indented comment\r\n"
        "export  SPACED = 'a b' \n"
        "\tTAB=1\n"
        'Q="esc \\" quote"\n'
        "U='never closed\n"
        "\n\n"
        "LAST=no newline"
    )
    assert "".join(b.original.string for b in parse_stream(io.StringIO(text))) == text


def test_a_leading_bom_is_dropped_by_the_parser_so_the_rewrite_keeps_it_itself() -> None:
    """dotenv_file strips the BOM before parsing and puts it back: the parser drops it (and nothing else)."""
    bindings = list(parse_stream(io.StringIO("\ufeffA=1\n")))
    assert [(b.key, b.original.string) for b in bindings] == [("A", "A=1\n")]

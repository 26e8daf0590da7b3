"""POSIX shell quoting, the one rule every generated command line and hint uses (render, hooks, CI files, hints)."""

from __future__ import annotations


def quote_sh(value: str) -> str:
    """POSIX single quotes: everything literal; a `'` becomes `'\\''`."""
    return "'" + value.replace("'", "'\\''") + "'"

"""What vertex-env echoes back of a value it was given (a path, a variable, Google's error text): control
characters escaped, so that no terminal escape or forged line reaches the user's screen, and length capped."""

from __future__ import annotations

import re

__all__ = ["ECHO_LIMIT", "printable"]

#: The most characters of one value echoed in a message.
ECHO_LIMIT = 200

# C0 and C1 controls, DEL, and the Unicode line and bidi controls a terminal or a log viewer acts on.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` with control characters escaped (`\\x1b`), surrogates (undecodable bytes) shown as `\\udcxx`,
    and cut to `limit` characters with the number left out."""
    cut = text if len(text) <= limit else text[:limit]
    shown = _CONTROL.sub(_escape, cut)
    if any("\ud800" <= c <= "\udfff" for c in shown):
        shown = shown.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        shown += f"… ({len(text) - limit} more characters)"
    return shown

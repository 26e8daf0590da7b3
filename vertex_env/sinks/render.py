"""Shell and text renderings of the variables (`vertex-env export --format …`): quoting that is safe for any value.

Every renderer is pure over the mapping it is given. POSIX statements end with `;` so that the unquoted
`eval $(vertex-env export)` cannot merge two statements after word splitting.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from vertex_env.config.values import CI_FORMATS as CI_FORMATS
from vertex_env.config.values import FORMATS as FORMATS
from vertex_env.config.values import SHELL_FORMATS as SHELL_FORMATS
from vertex_env.errors import SinkError
from vertex_env.system.quoting import quote_sh

# Patterns are compiled on first use (re's cache), not at import: `export` renders one format.
_NAME = r"[A-Za-z_][A-Za-z0-9_]*\Z"

# cmd.exe has no quoting that survives every way a line reaches it (`for /f … do %i`, a `call`ed .cmd file,
# delayed expansion): `"` ends the quoted `set "NAME=value"` and exposes `&|<>`, `%` and `!` expand, `^`
# escapes under delayed expansion, control characters (newlines) end the line, and non-ASCII text depends on
# the console code page. Values holding any of these are refused rather than rendered wrongly.
_CMD_UNSAFE = r'[^\x20-\x7e]|["%!^]'
CMD_REFUSED = 'control characters, newlines, non-ASCII characters and " % ! ^'

# PowerShell treats the typographic single quotes as quote characters too; each is escaped by doubling.
_PWSH_QUOTES = "['\u2018\u2019\u201a\u201b]"

# dotenv: values are written unquoted, so only characters that every reader of a dotenv file takes literally
# when unquoted are accepted. The readers, each checked by tests/test_dotenv_file.py:
#   - python-dotenv: unquoted value up to end of line; `' "` start a quoted value, `<space>#` a comment,
#     surrounding whitespace is stripped, `${…}` is interpolated.
#   - docker `--env-file`: the literal text after the first `=` (no quotes, no escapes, no trimming).
#   - direnv `dotenv`: `#` starts a comment anywhere in an unquoted value; `$VAR` is expanded.
#   - POSIX sh `set -a; . ./.env`: a shell word, so `$ \ ` ' " ; & | < > ( )` and blanks are code, and `~`
#     at the start or after `:` is the home directory. zsh also expands a word that starts with `=`.

#: Characters a value may hold: letters, digits and `._:/?[]@!+,=%-` (a value must not start with `=`).
ALLOWED_VALUE_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" + "._:/?[]@!+,=%-"
)
ALLOWED_DESCRIPTION = "ASCII letters, digits and . _ : / ? [ ] @ ! + , = % - (not starting with =)"


def check_name(name: str) -> None:
    """Refuse a variable name that is not `[A-Za-z_][A-Za-z0-9_]*` (it would be code in a shell)."""
    if not re.match(_NAME, name):
        raise SinkError(
            f"invalid variable name {name!r}: use letters, digits and _, not starting with a digit"
        )


def check_no_nul(name: str, value: str) -> None:
    """Environment values are C strings: a NUL byte cannot be passed on. The value is never echoed."""
    if "\0" in value:
        raise SinkError(f"the value of {name} contains a NUL byte, which no environment can hold")


def _checked(variables: Mapping[str, str]) -> list[tuple[str, str]]:
    items = list(variables.items())
    for name, value in items:
        check_name(name)
        check_no_nul(name, value)
    return items


def quote_fish(value: str) -> str:
    """fish single quotes: only `\\\\` and `\\'` are escapes inside them."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_powershell(value: str) -> str:
    """PowerShell verbatim string: every kind of single quote is doubled; nothing else is special."""
    return "'" + re.sub(_PWSH_QUOTES, lambda m: m.group(0) * 2, value) + "'"


def check_cmd_value(name: str, value: str) -> None:
    if re.search(_CMD_UNSAFE, value):
        raise SinkError(
            f"the value of {name} cannot be written safely for cmd.exe",
            hint=f"cmd format refuses {CMD_REFUSED}; use --format powershell or json",
        )


def check_dotenv_value(name: str, value: str) -> None:
    """Refuse a value the dotenv readers would not all read back literally. The value is never echoed."""
    if value.startswith("=") or not ALLOWED_VALUE_CHARS.issuperset(value):
        raise SinkError(
            f"the value of {name} cannot be written to a dotenv file unquoted",
            hint=f"allowed: {ALLOWED_DESCRIPTION}",
        )


def format_dotenv_line(name: str, value: str) -> str:
    """`NAME=value` without a line ending, after validating both."""
    check_name(name)
    check_dotenv_value(name, value)
    return f"{name}={value}"


def render(variables: Mapping[str, str], fmt: str) -> str:
    """The text that sets every variable in the given format (one of FORMATS)."""
    items = _checked(variables)
    if fmt == "sh":
        return "".join(f"export {name}={quote_sh(value)};\n" for name, value in items)
    if fmt == "fish":
        return "".join(f"set -gx {name} {quote_fish(value)};\n" for name, value in items)
    if fmt == "powershell":
        return "".join(f"$env:{name} = {quote_powershell(value)};\n" for name, value in items)
    if fmt == "cmd":
        for name, value in items:
            check_cmd_value(name, value)
        return "".join(f'set "{name}={value}"\n' for name, value in items)
    if fmt == "dotenv":
        return "".join(format_dotenv_line(name, value) + "\n" for name, value in items)
    if fmt == "json":
        import json  # only for this format

        return json.dumps(dict(items)) + "\n"
    raise _unknown(fmt)


def render_unset(names: Iterable[str], fmt: str) -> str:
    """The text that removes every named variable (dotenv cannot express "unset": refused)."""
    names = list(names)
    for name in names:
        check_name(name)
    if fmt == "sh":
        return "".join(f"unset {name};\n" for name in names)
    if fmt == "fish":
        # `set -e` of an unset variable fails; unsetting what is not there is still a success.
        return "".join(f"set -e {name}; or true;\n" for name in names)
    if fmt == "powershell":
        return "".join(
            f"Remove-Item -Path Env:{name} -ErrorAction SilentlyContinue;\n" for name in names
        )
    if fmt == "cmd":
        return "".join(f'set "{name}="\n' for name in names)
    if fmt == "json":
        import json

        return json.dumps(dict.fromkeys(names)) + "\n"
    if fmt == "dotenv":
        raise SinkError(
            "the dotenv format cannot express unsetting a variable", hint="use --format sh or json"
        )
    raise _unknown(fmt)


def failure_output(fmt: str) -> str:
    """What stdout carries when the export fails: code whose status is failure, and never `exit`.

    `eval "$(vertex-env export)" && next` must not run `next`, and an interactive shell must stay open.
    """
    if fmt in ("sh", "fish"):
        return "false;\n"
    if fmt == "powershell":
        # Write-Error sets $? to false; Continue keeps it non-terminating even under ErrorActionPreference=Stop.
        return (
            "$global:LASTEXITCODE = 1; "
            "Write-Error -Message 'vertex-env: export failed (see the error above)' -ErrorAction Continue;\n"
        )
    if fmt == "cmd":
        # A child cmd that exits 1 sets ERRORLEVEL without closing the caller's console.
        return "cmd /d /c exit 1\n"
    if fmt in ("dotenv", "json"):
        return ""
    raise _unknown(fmt)


def _unknown(fmt: str) -> SinkError:
    return SinkError(f"unknown format {fmt!r}", hint=f"choose one of {', '.join(FORMATS)}")

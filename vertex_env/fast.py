"""The warm path: `token` and `export` served from a fresh cached token without importing click.

These two commands run at prompts, in direnv and in `$(vertex-env token)` loops, where the interpreter start
is most of their cost and click would triple it. This module reads the command line against the same option
table the click options are built from (`config.OPTIONS`), resolves the profile with the same code
(`environment.resolve`), and answers only when the shared cache holds a token with enough life left. Anything
else — `--help`, an unknown or repeated flag, a CI format, `--unset`, `--no-cache`, a cache miss, any error —
returns None and the full click CLI runs instead, so its output and exit codes are the only ones users see.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

#: Flags of `export` besides the profile options: name -> takes a value.
_EXPORT_FLAGS = {"--format": True, "--google": False, "--legacy": False}
#: Boolean environment values as click reads them; anything else is click's to reject.
_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off")


def entry_point() -> None:
    """The `vertex-env` console script: the warm path when it can answer, else the click CLI."""
    code = run(sys.argv[1:])
    if code is None:
        from vertex_env.cli import main

        code = main()
    sys.exit(code)


def run(argv: list[str]) -> int | None:
    """Serve `token` / `export` from the cache and return 0; None whenever click must decide."""
    if not argv or argv[0] not in ("token", "export") or "_VERTEX_ENV_COMPLETE" in os.environ:
        return None
    try:
        output = _answer(argv[0], argv[1:], os.environ)
    except Exception:  # whatever went wrong, the click path reports it properly
        return None
    if output is None or "\x1b" in output:  # click strips ANSI escapes off a non-terminal
        return None
    try:
        sys.stdout.write(output)
        sys.stdout.flush()
    except BrokenPipeError:
        return 141
    return 0


def parse(command: str, args: list[str]) -> tuple[dict[str, str], set[str]] | None:
    """The values and the switches given, by option name (None: not a command line this path handles)."""
    from vertex_env.config import OPTIONS

    takes_value = {"--profile": "profile", **{opt.flag: opt.name for opt in OPTIONS}}
    flags = _EXPORT_FLAGS if command == "export" else {}
    values: dict[str, str] = {}
    switches: set[str] = set()
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        flag, eq, inline = arg.partition("=")
        if flag in takes_value or flags.get(flag):
            if eq:
                value = inline
            elif rest and not rest[0].startswith("-"):
                value = rest.pop(0)
            else:
                return None
            name = takes_value.get(flag) or flag[2:]
            if name in values:
                return None
            values[name] = value
        elif flag in flags and not eq and flag[2:] not in switches:
            switches.add(flag[2:])
        else:
            return None  # --help, --unset, --no-cache, an unknown or repeated flag, an argument: click's
    return values, switches


def _env_flag(environ: Mapping[str, str], name: str) -> bool | None:
    value = environ.get(name, "").strip().lower()
    if not value or value in _FALSE:
        return False
    return True if value in _TRUE else None


def _answer(command: str, args: list[str], environ: Mapping[str, str]) -> str | None:
    parsed = parse(command, args)
    if parsed is None or _env_flag(environ, "VERTEX_ENV_NO_CACHE") is not False:
        return None
    values, switches = parsed
    fmt, google, legacy = "sh", False, False
    if command == "export":
        from vertex_env import render

        fmt = values.pop("format", "") or environ.get("VERTEX_ENV_FORMAT") or "sh"
        from_env = _env_flag(environ, "VERTEX_ENV_GOOGLE"), _env_flag(environ, "VERTEX_ENV_LEGACY")
        if fmt not in render.FORMATS or None in from_env:
            return None
        google = "google" in switches or bool(from_env[0])
        legacy = "legacy" in switches or bool(from_env[1])
    from vertex_env.environment import resolve

    profile = values.pop("profile", None)
    env = resolve(profile, environ=environ, use_cache=True, **values)
    token = env.token_source.cached()
    if token is None:
        return None
    if command == "token":
        return token.value + "\n"
    from vertex_env.environment import recorded

    variables = env.variables(token, google=google, legacy=legacy)
    if fmt in render.SHELL_FORMATS:
        variables = recorded(variables)
    return render.render(variables, fmt)

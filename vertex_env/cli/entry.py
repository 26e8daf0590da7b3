"""The warm path: `token` and `export` served from a fresh cached token without importing click.

These two commands run at prompts, in direnv and in `$(vertex-env token)` loops, where the interpreter start
is most of their cost and click would triple it. This module reads the command line against the same option
table the click options are built from (`option_table.ALL_OPTIONS`, with `option_table.COMMAND_KINDS` saying which
options each command takes), reads every value with the same code (`option_table.value`, `environment.resolve`),
and answers only when the shared cache holds a token with enough life left. Anything
else — `--help`, an unknown or repeated flag, a CI format, `--unset`, `--no-cache`, a cache miss, any error —
returns None and the full click CLI runs instead, so its output and exit codes are the only ones users see.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

TYPE_CHECKING = False  # typing stays off the warm path
if TYPE_CHECKING:
    from typing import Any


def entry_point() -> None:
    """The `vertex-env` console script: the warm path when it can answer, else the click CLI."""
    code = run(sys.argv[1:])
    if code is None:
        from vertex_env.cli.group import main

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


def parse(command: str, args: list[str]) -> dict[str, Any] | None:
    """The options given, by name, as the table lists them for `command` (None: not a command line this path
    handles — `--help`, `--unset`, an unknown or repeated flag, a missing value, an argument)."""
    from vertex_env.config.options import ALL_OPTIONS, COMMAND_KINDS

    kinds = COMMAND_KINDS[command]
    accepted = {opt.flag: opt for opt in ALL_OPTIONS if opt.kind in kinds}
    given: dict[str, Any] = {}
    rest = list(args)
    while rest:
        flag, eq, inline = rest.pop(0).partition("=")
        opt = accepted.get(flag)
        if opt is None or opt.name in given:
            return None
        if opt.switch:
            if eq:
                return None
            given[opt.name] = True
        elif eq:
            given[opt.name] = inline
        elif rest and not rest[0].startswith("-"):
            given[opt.name] = rest.pop(0)
        else:
            return None
    return given


def _answer(command: str, args: list[str], environ: Mapping[str, str]) -> str | None:
    given = parse(command, args)
    if given is None:
        return None
    from vertex_env.config import options as option_table
    from vertex_env.config import values
    from vertex_env.environment import resolve

    choices = {
        opt.name: option_table.value(opt.name, given, environ)
        for opt in option_table.ALL_OPTIONS
        if opt.kind in option_table.COMMAND_KINDS[command]
        and opt.kind in (option_table.EXPORT, option_table.VARIABLES)
    }
    fmt = choices.get("format", "sh")
    if fmt not in values.FORMATS:  # a CI format writes the job's files: click's
        return None
    options = {
        name: value
        for name, value in given.items()
        if option_table.ALL_BY_NAME[name].kind in (option_table.COMMON, option_table.FIELD)
    }
    env = resolve(environ=environ, **options)
    token = env.token_source.cached() if env.token_source.use_cache else None
    if token is None:
        return None
    if command == "token":
        return token.value + "\n"
    from vertex_env.environment import recorded
    from vertex_env.sinks import render

    variables = env.variables(token, google=choices["google"], legacy=choices["legacy"])
    if fmt in render.SHELL_FORMATS:
        variables = recorded(variables)
    return render.render(variables, fmt)

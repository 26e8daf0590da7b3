"""`vertex-env write PATH…`: set the variables in dotenv files, every other line kept byte for byte."""

from __future__ import annotations

import logging
from typing import Any

import click

from vertex_env.cli.commands.options import profile_options, variable_options
from vertex_env.environment import resolve
from vertex_env.system.diagnostics import speaker

log = logging.getLogger(__name__)


@click.command(
    epilog="\b\nExamples:\n  vertex-env write .env\n  vertex-env write .env services/api/.env --google"
)
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(dir_okay=False), metavar="PATH..."
)
@variable_options
@profile_options
def write(options: dict[str, Any], paths: tuple[str, ...], google: bool, legacy: bool) -> None:
    """Set OPENAI_API_KEY, OPENAI_BASE_URL and VERTEX_ENV_EXPIRES_AT in each dotenv file.

    Atomic and locked; comments, other keys, CRLF endings and an `export ` prefix are kept; the file ends up 0600
    (a wider mode is tightened, a file of another user refused).
    Keep them fresh with `vertex-env daemon --write PATH`.
    """
    from vertex_env.sinks.dotenv_file import tightened_notice, update_dotenv

    env = resolve(**options)
    variables = env.variables(google=google, legacy=legacy)
    for path in paths:
        written = update_dotenv(path, variables)
        if written.tightened_from is not None:
            log.info(tightened_notice(written))
        log.info(f"wrote {', '.join(variables)} to {written.path}", extra=speaker(""))

"""`vertex-env write PATH…`: set the variables in dotenv files, every other line kept byte for byte."""

from __future__ import annotations

from typing import Any

import click

from vertex_env.commands.options import environment_from, profile_options, variable_options


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

    Atomic and locked; comments, other keys, CRLF endings and an `export ` prefix are kept; new files are 0600.
    Keep them fresh with `vertex-env daemon --write PATH`.
    """
    from vertex_env.dotenv_file import write_dotenv

    env = environment_from(options)
    variables = env.variables(google=google, legacy=legacy)
    for path in paths:
        target = write_dotenv(path, variables)
        click.echo(f"wrote {', '.join(variables)} to {target}", err=True)

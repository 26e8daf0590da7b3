"""`vertex-env export`: the variables as shell code, dotenv, JSON, or a CI job's setup."""

from __future__ import annotations

import logging
import os
from typing import Any

import click

from vertex_env.cli.commands.options import command_options
from vertex_env.config.values import CI_FORMATS
from vertex_env.environment import resolve

log = logging.getLogger(__name__)


@click.command(
    epilog="\b\nExamples:\n"
    '  eval "$(vertex-env export)"\n'
    "  vertex-env export --format fish | source\n"
    "  vertex-env export --format github      # in a GitHub Actions step"
)
@click.option("--unset", is_flag=True, help="Print what removes the variables again.")
@command_options("export")
def export(options: dict[str, Any], format: str, unset: bool, google: bool, legacy: bool) -> int:
    """Print the variables OPENAI_API_KEY, OPENAI_BASE_URL and VERTEX_ENV_EXPIRES_AT.

    On any failure stdout carries only `false;` (in a shell format), so `eval "$(vertex-env export)"` fails too.
    """
    from vertex_env.environment import names_to_unset, recorded
    from vertex_env.sinks import render

    fmt = format
    if unset:
        if fmt in CI_FORMATS:
            raise click.UsageError(
                f"--unset has no --format {fmt}: a CI job's variables end with the job"
            )
        click.echo(render.render_unset(names_to_unset(os.environ), fmt), nl=False)
        return 0
    env = resolve(**options)
    token = env.token()
    variables = env.variables(token, google=google, legacy=legacy)
    if fmt in render.SHELL_FORMATS:
        variables = recorded(variables)
    if fmt in CI_FORMATS:
        output = _ci(fmt, variables, token.value)
    else:
        output = render.render(variables, fmt)
    click.echo(output, nl=False)
    return 0


def _ci(fmt: str, variables: dict[str, str], token: str) -> str:
    from vertex_env.sinks import ci

    if fmt == "github":
        return str(ci.write_github(variables, token, os.environ))
    if fmt == "gitlab":
        log.warning(ci.GITLAB_WARNING)
        return str(ci.render_gitlab(variables))
    ci.write_circleci(variables, os.environ)
    return ""

"""`vertex-env export`: the variables as shell code, dotenv, JSON, or a CI job's setup."""

from __future__ import annotations

import os
from typing import Any

import click

from vertex_env.commands.options import environment_from, profile_options, variable_options
from vertex_env.render import CI_FORMATS, FORMATS


@click.command(
    epilog="\b\nExamples:\n"
    '  eval "$(vertex-env export)"\n'
    "  vertex-env export --format fish | source\n"
    "  vertex-env export --format github      # in a GitHub Actions step"
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS + CI_FORMATS),
    default="sh",
    envvar="VERTEX_ENV_FORMAT",
    help="Output format; sh (POSIX: bash, zsh, dash, ksh) unless given, whatever $SHELL says. [env: VERTEX_ENV_FORMAT]",
)
@click.option("--unset", is_flag=True, help="Print what removes the variables again.")
@variable_options
@profile_options
def export(options: dict[str, Any], fmt: str, unset: bool, google: bool, legacy: bool) -> int:
    """Print the variables OPENAI_API_KEY, OPENAI_BASE_URL and VERTEX_ENV_EXPIRES_AT.

    On any failure stdout carries only `false;` (in a shell format), so `eval "$(vertex-env export)"` fails too.
    """
    from vertex_env import render
    from vertex_env.environment import names_to_unset, recorded

    if unset:
        if fmt in CI_FORMATS:
            raise click.UsageError(
                f"--unset has no --format {fmt}: a CI job's variables end with the job"
            )
        click.echo(render.render_unset(names_to_unset(os.environ), fmt), nl=False)
        return 0
    env = environment_from(options)
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
    from vertex_env import ci

    if fmt == "github":
        return str(ci.write_github(variables, token, os.environ))
    if fmt == "gitlab":
        click.echo(f"vertex-env: warning: {ci.GITLAB_WARNING}", err=True)
        return str(ci.render_gitlab(variables))
    ci.write_circleci(variables, os.environ)
    return ""

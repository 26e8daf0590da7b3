"""`vertex-env export`: the variables as shell code, dotenv, JSON, or a CI job's setup."""

from __future__ import annotations

import os
from typing import Any

import click

from vertex_env.commands.options import environment_from, profile_options, variable_options
from vertex_env.errors import VertexEnvError

CI_FORMATS = ("github", "gitlab", "circleci")
SHELL_FORMATS = ("sh", "fish", "powershell", "cmd", "dotenv", "json")


@click.command(
    epilog="\b\nExamples:\n"
    '  eval "$(vertex-env export)"\n'
    "  vertex-env export --format fish | source\n"
    "  vertex-env export --format github      # in a GitHub Actions step"
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(SHELL_FORMATS + CI_FORMATS),
    default=None,
    envvar="VERTEX_ENV_FORMAT",
    help="Output format; default follows $SHELL (fish, powershell) else sh. [env: VERTEX_ENV_FORMAT]",
)
@click.option("--unset", is_flag=True, help="Print what removes the variables again.")
@variable_options
@profile_options
def export(
    options: dict[str, Any], fmt: str | None, unset: bool, google: bool, legacy: bool
) -> int:
    """Print the variables OPENAI_API_KEY, OPENAI_BASE_URL and VERTEX_ENV_EXPIRES_AT.

    On failure stdout carries only `false`, so `eval "$(vertex-env export)"` fails too.
    """
    from vertex_env import render

    fmt = fmt or render.default_format(os.environ)
    if unset:
        from vertex_env.environment import ALL_NAMES

        click.echo(render.render_unset(ALL_NAMES, fmt if fmt in SHELL_FORMATS else "sh"), nl=False)
        return 0
    try:
        env = environment_from(options)
        token = env.token()
        variables = env.variables(token, google=google, legacy=legacy)
        if fmt in CI_FORMATS:
            output = _ci(fmt, variables, token.value)
        else:
            output = render.render(variables, fmt)
    except VertexEnvError as err:
        from vertex_env.cli import report

        if fmt in SHELL_FORMATS:  # a CI format's stdout may be a report file: leave it empty
            click.echo(render.failure_output(fmt), nl=False)
        report(err)
        return err.exit_code
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

"""`vertex-env token`: the access token alone, like `gcloud auth application-default print-access-token`."""

from __future__ import annotations

from typing import Any

import click

from vertex_env.cli.commands.options import command_options
from vertex_env.environment import resolve


@click.command(
    epilog='\b\nExamples:\n  vertex-env token\n  curl -H "Authorization: Bearer $(vertex-env token)" "$OPENAI_BASE_URL/chat/completions" ...'
)
@command_options("token")
def token(options: dict[str, Any]) -> None:
    """Print a fresh access token (from the shared cache when it has enough life left)."""
    env = resolve(**options)
    click.echo(env.token().value)

"""`vertex-env run -- CMD`: run a command with the variables set (exec), or behind the refreshing proxy."""

from __future__ import annotations

import os
from typing import Any

import click

from vertex_env.commands.options import profile_options, variable_options
from vertex_env.environment import resolve


@click.command(
    epilog="\b\nExamples:\n  vertex-env run -- python app.py\n  vertex-env run --proxy -- uvicorn app:api",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--proxy",
    is_flag=True,
    help="Serve the child through a loopback proxy that keeps tokens fresh for as long as it runs.",
)
@click.option("--force", is_flag=True, help="Run even inside another `vertex-env run`.")
@variable_options
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="-- CMD [ARGS]...")
@profile_options
def run(
    options: dict[str, Any],
    proxy: bool,
    force: bool,
    google: bool,
    legacy: bool,
    command: tuple[str, ...],
) -> int:
    """Run CMD with OPENAI_API_KEY and OPENAI_BASE_URL set (no CMD: start $SHELL).

    Without --proxy the child gets the token by value and takes over this process (exec): its signals and exit
    code are its own. A child that outlives the token (about an hour) should use --proxy.
    """
    from vertex_env import run as run_sink

    run_sink.check_not_nested(os.environ, force)
    argv = list(command) or [os.environ.get("SHELL") or "/bin/sh"]
    env = resolve(**options)
    if proxy:
        from vertex_env.hardening import disable_core_dumps
        from vertex_env.proxy_run import run_with_proxy

        disable_core_dumps()  # we hold tokens for as long as the child runs: no core file with one in it

        return run_with_proxy(env, argv, legacy=legacy, google=google)
    variables = env.variables(google=google, legacy=legacy)
    run_sink.exec_command(argv, run_sink.child_environment(os.environ, variables))

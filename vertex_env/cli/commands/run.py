"""`vertex-env run -- CMD`: run a command with the variables set (exec), or behind the refreshing proxy."""

from __future__ import annotations

import logging
import os
from typing import Any

import click

from vertex_env.cli.commands.options import complete_file, profile_options, variable_options
from vertex_env.environment import resolve
from vertex_env.system.diagnostics import speaker

log = logging.getLogger(__name__)


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
@click.option(
    "--env-file",
    "env_files",
    multiple=True,
    metavar="PATH",
    shell_complete=complete_file,
    help="Also load this dotenv file's variables into the child (repeatable; a later file wins; "
    "vertex-env's own variables win over every file).",
)
@variable_options
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="-- CMD [ARGS]...")
@profile_options
def run(
    options: dict[str, Any],
    proxy: bool,
    force: bool,
    env_files: tuple[str, ...],
    google: bool,
    legacy: bool,
    command: tuple[str, ...],
) -> int:
    """Run CMD with OPENAI_API_KEY and OPENAI_BASE_URL set (no CMD: start $SHELL).

    Without --proxy the child gets the token by value and takes over this process (exec): its signals and exit
    code are its own. Its token has at least 45 minutes left (a cached one with less is replaced first; a
    short-lived one has at least three quarters of its life left). A child that outlives the token (about an
    hour) should use --proxy.
    """
    from vertex_env.sinks import exec_child as run_sink

    run_sink.check_not_nested(os.environ, force)
    argv = list(command) or [os.environ.get("SHELL") or "/bin/sh"]
    from_files = run_sink.read_env_files(
        env_files
    )  # before asking Google: a missing file is a mistake
    replaced = run_sink.replaced_names(from_files, google=google)
    if replaced:
        log.info(
            f"{', '.join(replaced)} from --env-file replaced by vertex-env's own value",
            extra=speaker("vertex-env: note"),
        )
    parent = {**os.environ, **from_files}
    env = resolve(**options)
    if proxy:
        from vertex_env.proxy.run_proxy import run_with_proxy
        from vertex_env.system.hardening import disable_core_dumps

        disable_core_dumps()  # we hold tokens for as long as the child runs: no core file with one in it

        return run_with_proxy(env, argv, parent_environ=parent, legacy=legacy, google=google)
    token = env.token(prefer=run_sink.CHILD_PREFERRED_TTL)
    variables = env.variables(token, google=google, legacy=legacy)
    run_sink.exec_command(argv, run_sink.child_environment(parent, variables))

"""`vertex-env daemon`: keep the token cache and dotenv files fresh, in the foreground (systemd, launchd)."""

from __future__ import annotations

from typing import Any

import click

from vertex_env.cli.commands.options import profile_options, variable_options
from vertex_env.environment import resolve


@click.command(
    epilog="\b\nExamples:\n"
    "  vertex-env daemon --write ~/project/.env\n"
    "  vertex-env daemon --once --write .env     # from cron, at least every 5 minutes"
)
@click.option(
    "--write",
    "writes",
    multiple=True,
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="Dotenv file to keep fresh (repeatable; default: the profile's `write` list).",
)
@click.option("--once", is_flag=True, help="Refresh if due, write the files, and exit (for cron).")
@click.option(
    "--keep-going",
    is_flag=True,
    help="Keep retrying after a permanent failure (revoked grant, reauth) instead of exiting.",
)
@variable_options
@profile_options
def daemon(
    options: dict[str, Any],
    writes: tuple[str, ...],
    once: bool,
    keep_going: bool,
    google: bool,
    legacy: bool,
) -> int:
    """Keep the token cache (and every --write file) fresh ahead of the token's expiry.

    Runs in the foreground under a supervisor (systemd, launchd), one per profile: a second one exits with
    code 11. Transient failures are retried with backoff while consumers keep the last good token; a
    permanent one (revoked grant, reauthentication) exits with its code unless --keep-going.
    SIGTERM/SIGINT stop it cleanly; SIGHUP re-reads the configuration. One line per refresh on stderr.
    """
    from vertex_env.errors import UsageError
    from vertex_env.sinks.daemon import (
        EnvironmentKeeper,
        check_targets,
        profile_targets,
        resolve_targets,
        serve,
    )

    fixed = resolve_targets(writes) if writes else None

    def make_keeper() -> EnvironmentKeeper:
        env = resolve(**options)
        env.token_source.cache_key  # noqa: B018 - locate the credential now: fail before locking
        targets = check_targets(fixed if fixed is not None else profile_targets(env))
        if not targets and not env.token_source.use_cache:
            raise UsageError(
                "nothing to keep fresh: --no-cache bypasses the token cache and no --write file is given"
            )
        return EnvironmentKeeper(env, targets, google=google, legacy=legacy)

    return serve(make_keeper, once=once, keep_going=keep_going)

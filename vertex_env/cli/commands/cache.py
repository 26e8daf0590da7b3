"""`vertex-env cache`: inspect and clear the shared token cache."""

from __future__ import annotations

import logging
from typing import Any

import click

from vertex_env.cli.commands.options import profile_options
from vertex_env.core.cache import TokenCache
from vertex_env.environment import resolve
from vertex_env.system.diagnostics import speaker
from vertex_env.system.files import cache_dir

log = logging.getLogger(__name__)


@click.group(epilog='\b\nExamples:\n  vertex-env cache clear\n  ls -l "$(vertex-env cache path)"')
def cache() -> None:
    """Manage the shared token cache (short-lived access tokens, 0600 files in a 0700 directory)."""


@cache.command(
    "clear",
    epilog="\b\nExamples:\n  vertex-env cache clear\n  vertex-env cache clear --profile dev",
)
@click.option(
    "--profile",
    "name",
    metavar="NAME",
    help="Remove only this profile's cached token (shared by profiles with the same credential, "
    "scopes and quota project).",
)
def clear(name: str | None) -> None:
    """Remove every cached token (or one profile's); the next call mints a new one.

    Without --profile, also the dotenv and config writers' lock files that no process holds."""
    if name is None:
        from vertex_env.system.files import sweep_writers_locks

        token_cache = TokenCache()
        # clear() refuses a directory that is not private before anything is removed; then the dotenv and
        # config writers' lock files that no one holds go too
        removed = token_cache.clear()
        sweep_writers_locks(token_cache.directory)
        log.info(f"removed {removed} cached token(s) from {cache_dir()}", extra=speaker(""))
        return
    from vertex_env.environment import resolve
    from vertex_env.errors import SinkError
    from vertex_env.system import files

    source = resolve(name).token_source
    try:
        files.check_private_dir(source.cache.directory)
    except files.UnsafeDirectoryError as err:
        raise SinkError(
            f"refusing to touch the token cache {source.cache.directory}: {err.strerror}"
        ) from None
    except OSError:
        pass  # no cache directory: nothing cached
    removed = source.cache.remove(source.cache_key)
    where = source.cache.path_for(source.cache_key)
    log.info(
        f"removed the cached token of profile {name} ({where})"
        if removed
        else f"no cached token for profile {name} ({where})",
        extra=speaker(""),
    )


@cache.command(
    "path",
    epilog='\b\nExamples:\n  ls -l "$(vertex-env cache path)"\n  vertex-env cache path --token-file --profile dev',
)
@click.option(
    "--token-file",
    is_flag=True,
    help="Print the file holding this profile's token (what direnv watches; the daemon rewrites it).",
)
@click.option(
    "--daemon-state",
    is_flag=True,
    help="Print the state file of this profile's daemon (its pid, last and next refresh); after the token file.",
)
@profile_options
def path(options: dict[str, Any], token_file: bool, daemon_state: bool) -> None:
    """Print the cache directory, or the resolved profile's token file and/or daemon state file (one a line)."""
    if not (token_file or daemon_state):
        click.echo(str(cache_dir()))
        return
    env = resolve(**options)
    source = env.token_source
    if token_file:
        click.echo(str(source.cache.path_for(source.cache_key)))
    if daemon_state:
        from vertex_env.sinks.daemon import daemon_digest, state_path

        click.echo(str(state_path(source.cache.directory, daemon_digest(env))))

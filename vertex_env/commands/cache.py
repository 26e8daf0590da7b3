"""`vertex-env cache`: inspect and clear the shared token cache."""

from __future__ import annotations

import click

from vertex_env.cache import TokenCache, cache_dir


@click.group()
def cache() -> None:
    """Manage the shared token cache (short-lived access tokens, 0600 files in a 0700 directory)."""


@cache.command("clear")
def clear() -> None:
    """Remove every cached token; the next call mints a new one.

    \b
    Example:
      vertex-env cache clear
    """
    removed = TokenCache().clear()
    click.echo(f"removed {removed} cached token(s) from {cache_dir()}", err=True)


@cache.command("path")
def path() -> None:
    """Print the cache directory.

    \b
    Example:
      ls -l "$(vertex-env cache path)"
    """
    click.echo(str(cache_dir()))

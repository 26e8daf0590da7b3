"""`vertex-env cache`: inspect and clear the shared token cache."""

from __future__ import annotations

import click

from vertex_env.cache import TokenCache, cache_dir


@click.group()
def cache() -> None:
    """Manage the shared token cache (short-lived access tokens, 0600 files in a 0700 directory)."""


@cache.command("clear", epilog="\b\nExample:\n  vertex-env cache clear")
def clear() -> None:
    """Remove every cached token; the next call mints a new one."""
    removed = TokenCache().clear()
    click.echo(f"removed {removed} cached token(s) from {cache_dir()}", err=True)


@cache.command("path", epilog='\b\nExample:\n  ls -l "$(vertex-env cache path)"')
def path() -> None:
    """Print the cache directory."""
    click.echo(str(cache_dir()))

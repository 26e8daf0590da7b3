"""`vertex-env profile list|show|set|remove|default`: manage named profiles without hand-editing TOML."""

from __future__ import annotations

import json

import click

from vertex_env import profiles
from vertex_env.config import config_path


@click.group(
    epilog="\b\nExamples:\n  vertex-env profile set dev project=my-project location=europe-west4\n  vertex-env export --profile dev    # or VERTEX_ENV_PROFILE=dev"
)
def profile() -> None:
    """Manage named profiles in the config file (~/.config/vertex-env/config.toml)."""


@profile.command("list", epilog="\b\nExample:\n  vertex-env profile list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(as_json: bool) -> None:
    """List profile names; the default one is marked with *."""
    names, default = profiles.list_profiles()
    if as_json:
        click.echo(json.dumps({"profiles": names, "default": default}))
        return
    for name in names:
        click.echo(f"{'*' if name == default else ' '} {name}")
    if not names:
        click.echo(f"no profiles in {config_path()}", err=True)


@profile.command("show", epilog="\b\nExample:\n  vertex-env profile show dev")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(name: str, as_json: bool) -> None:
    """Show one profile's settings."""
    values = profiles.show_profile(name)
    if as_json:
        click.echo(json.dumps(values))
        return
    for key, value in values.items():
        click.echo(f"{key} = {','.join(value) if isinstance(value, list) else value}")


@profile.command(
    "set",
    epilog="\b\nExample:\n  vertex-env profile set prod project=acme-prod location=global impersonate=vertex@acme-prod.iam.gserviceaccount.com",
)
@click.argument("name")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
def set_(name: str, assignments: tuple[str, ...]) -> None:
    """Set keys of a profile (created if missing); other settings and comments are kept.

    Keys: project, location, endpoint, api_version, host, credentials, impersonate, lifetime, quota_project,
    scopes, min_ttl, write (dotenv files the daemon keeps fresh, comma separated).
    """
    path = profiles.set_values(name, list(assignments))
    click.echo(f"profile {name} updated in {path}", err=True)


@profile.command(
    "remove",
    epilog="\b\nExamples:\n  vertex-env profile remove dev\n  vertex-env profile remove dev impersonate lifetime",
)
@click.argument("name")
@click.argument("keys", nargs=-1)
def remove(name: str, keys: tuple[str, ...]) -> None:
    """Remove a profile, or only some of its keys."""
    path = profiles.remove(name, list(keys))
    click.echo(f"profile {name} {'keys removed' if keys else 'removed'} in {path}", err=True)


@profile.command("default", epilog="\b\nExample:\n  vertex-env profile default dev")
@click.argument("name")
def default(name: str) -> None:
    """Make NAME the profile used when none is given."""
    path = profiles.set_default(name)
    click.echo(f"default profile is now {name} ({path})", err=True)

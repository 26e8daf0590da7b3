"""`vertex-env profile list|show|set|remove|default`: manage named profiles without hand-editing TOML."""

from __future__ import annotations

import json

import click

from vertex_env import profiles
from vertex_env.config import config_path


@click.group()
def profile() -> None:
    """Manage named profiles in the config file (~/.config/vertex-env/config.toml).

    \b
    Examples:
      vertex-env profile set dev project=my-project location=europe-west4
      vertex-env export --profile dev    # or VERTEX_ENV_PROFILE=dev
    """


@profile.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(as_json: bool) -> None:
    """List profile names; the default one is marked with *.

    \b
    Example:
      vertex-env profile list
    """
    names, default = profiles.list_profiles()
    if as_json:
        click.echo(json.dumps({"profiles": names, "default": default}))
        return
    for name in names:
        click.echo(f"{'*' if name == default else ' '} {name}")
    if not names:
        click.echo(f"no profiles in {config_path()}", err=True)


@profile.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(name: str, as_json: bool) -> None:
    """Show one profile's settings.

    \b
    Example:
      vertex-env profile show dev
    """
    values = profiles.show_profile(name)
    if as_json:
        click.echo(json.dumps(values))
        return
    for key, value in values.items():
        click.echo(f"{key} = {','.join(value) if isinstance(value, list) else value}")


@profile.command("set")
@click.argument("name")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
def set_(name: str, assignments: tuple[str, ...]) -> None:
    """Set keys of a profile (created if missing); other settings and comments are kept.

    Keys: project, location, endpoint, api_version, host, credentials, impersonate, lifetime, quota_project,
    scopes, min_ttl, write (dotenv files the daemon keeps fresh, comma separated).

    \b
    Example:
      vertex-env profile set prod project=acme-prod location=global impersonate=vertex@acme-prod.iam.gserviceaccount.com
    """
    path = profiles.set_values(name, list(assignments))
    click.echo(f"profile {name} updated in {path}", err=True)


@profile.command("remove")
@click.argument("name")
@click.argument("keys", nargs=-1)
def remove(name: str, keys: tuple[str, ...]) -> None:
    """Remove a profile, or only some of its keys.

    \b
    Examples:
      vertex-env profile remove dev
      vertex-env profile remove dev impersonate lifetime
    """
    path = profiles.remove(name, list(keys))
    click.echo(f"profile {name} {'keys removed' if keys else 'removed'} in {path}", err=True)


@profile.command("default")
@click.argument("name")
def default(name: str) -> None:
    """Make NAME the profile used when none is given.

    \b
    Example:
      vertex-env profile default dev
    """
    path = profiles.set_default(name)
    click.echo(f"default profile is now {name} ({path})", err=True)

"""`vertex-env profile list|show|set|remove|default`: manage named profiles without hand-editing TOML."""

from __future__ import annotations

import json
import logging

import click

from vertex_env.config import editing as profiles
from vertex_env.config.file import config_path
from vertex_env.system.diagnostics import speaker

log = logging.getLogger(__name__)


@click.group(
    epilog="\b\nExamples:\n  vertex-env profile set dev project=my-project location=europe-west4\n  vertex-env export --profile dev    # or VERTEX_ENV_PROFILE=dev"
)
def profile() -> None:
    """Manage named profiles in the config file (~/.config/vertex-env/config.toml)."""


@profile.command(
    "list", epilog="\b\nExamples:\n  vertex-env profile list\n  vertex-env profile list --json"
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (names and the default only).")
def list_(as_json: bool) -> None:
    """List profiles: project, location, credential kind and the life left in each one's cached token.

    The default one is marked with *. Tokens are read from the cache, never minted; values are those
    `--profile NAME` would use here (VERTEX_ENV_* variables outrank a profile).
    """
    import os

    from vertex_env.sinks.status import countdown, profile_overview

    names, default = profiles.list_profiles()
    if as_json:
        click.echo(json.dumps({"profiles": names, "default": default}))
        return
    if not names:
        log.info(f"no profiles in {config_path()}", extra=speaker(""))
        return
    table = [("", "PROFILE", "PROJECT", "LOCATION", "CREDENTIAL", "MODELS", "CACHED TOKEN")]
    for row in profile_overview(names, os.environ):
        if row["error"] is not None:
            token = f"error: {row['error']}"
        elif row["remaining_seconds"] is None:
            token = "none"
        else:
            token = countdown(row["remaining_seconds"])
        mark = "*" if row["name"] == default else ""
        cells = (row["project"], row["location"], row["credential"], str(row["models"] or ""))
        table.append((mark, row["name"], *(c or "-" for c in cells), token))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    for line in table:
        click.echo(
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False))
            + "  "
            + line[-1]
        )


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
        if key == "models" and isinstance(value, dict):
            for model, entry in value.items():
                where = ", ".join(f"{k}={v}" for k, v in dict(entry).items()) or "(the profile's)"
                click.echo(f"models.{model} = {where}")
            continue
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
    scopes, min_ttl, write (dotenv files the daemon keeps fresh, comma separated); models.ID=location=L,endpoint=E
    (where `serve` sends requests naming model ID; both optional), models_only (true: /models lists only those),
    models_ttl (how long `serve` keeps its model list, e.g. 1h).
    """
    path = profiles.set_values(name, list(assignments))
    log.info(f"profile {name} updated in {path}", extra=speaker(""))


@profile.command(
    "remove",
    epilog="\b\nExamples:\n  vertex-env profile remove dev\n  vertex-env profile remove dev impersonate lifetime",
)
@click.argument("name")
@click.argument("keys", nargs=-1)
def remove(name: str, keys: tuple[str, ...]) -> None:
    """Remove a profile, or only some of its keys."""
    path = profiles.remove(name, list(keys))
    log.info(f"profile {name} {'keys removed' if keys else 'removed'} in {path}", extra=speaker(""))


@profile.command("default", epilog="\b\nExample:\n  vertex-env profile default dev")
@click.argument("name")
def default(name: str) -> None:
    """Make NAME the profile used when none is given."""
    path = profiles.set_default(name)
    log.info(f"default profile is now {name} ({path})", extra=speaker(""))

"""`vertex-env status`: every resolved value and where it came from, the credential, the token's life (masked)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from vertex_env.commands.options import profile_options
from vertex_env.config import OPTIONS, format_duration
from vertex_env.environment import resolve
from vertex_env.errors import VertexEnvError


def mask(token: str) -> str:
    """Enough of a token to tell two apart, never enough to use: `ya29.…(243 chars)…f3`."""
    if len(token) < 12:
        return "…"
    return f"{token[:5]}…({len(token)} chars)…{token[-2:]}"


def countdown(seconds: float) -> str:
    if seconds <= 0:
        return f"expired {format_duration(-seconds)} ago"
    return f"expires in {format_duration(seconds)}"


def collect(options: dict[str, Any]) -> tuple[dict[str, Any], VertexEnvError | None]:
    env = resolve(**options)
    profile = env.profile
    report: dict[str, Any] = {"profile": profile.name, "values": {}, "warnings": []}
    for opt in OPTIONS:
        value = getattr(profile, opt.name)
        if isinstance(value, tuple):
            value = ",".join(value)
        report["values"][opt.name] = {
            "value": value,
            "source": profile.sources.get(opt.name, "default"),
        }
    error: VertexEnvError | None = None
    try:
        report["base_url"] = env.base_url
    except VertexEnvError as err:
        report["base_url"] = None
        report["warnings"].append(str(err))
    try:
        source = env.token_source.source
        report["credential"] = {
            "type": source.credential_type,
            "origin": source.origin,
            "path": source.path,
            "principal": source.principal(),
        }
        report["cache"] = {
            "path": str(env.token_source.cache.path_for(env.token_source.cache_key)),
            "enabled": env.token_source.use_cache,
        }
        token = env.token()
        report["token"] = {
            "masked": mask(token.value),
            "expires_at": int(token.expires_at),
            "remaining_seconds": int(token.remaining()),
            "countdown": countdown(token.remaining()),
            "from_cache": token.from_cache,
        }
        if token.principal:
            report["credential"]["principal"] = token.principal
    except VertexEnvError as err:
        error = err
        report["token"] = {"error": str(err)}
    cred_type = report.get("credential", {}).get("type", "")
    if cred_type.startswith("authorized_user") and not profile.quota_project:
        report["warnings"].append(
            "user credentials without a quota project: requests carry no x-goog-user-project "
            "(set --quota-project or GOOGLE_CLOUD_QUOTA_PROJECT; `run --proxy`, `serve` and the Python client then send it)"
        )
    report["keyring"] = _keyring_backend()
    report["daemon"] = _daemon_state(env)
    return report, error


def _keyring_backend() -> str:
    try:
        from vertex_env.keyring_store import backend_name

        return backend_name()
    except Exception as err:  # status must render even when keyring is broken
        return f"unavailable ({err})"


def _daemon_state(env: Any) -> dict[str, Any] | None:
    import importlib

    try:
        daemon_status = importlib.import_module("vertex_env.daemon").daemon_status
    except (ImportError, AttributeError):
        return None
    try:
        state: dict[str, Any] | None = daemon_status(env)
        return state
    except VertexEnvError:
        return None


@click.command(
    epilog="\b\nExamples:\n  vertex-env status\n  vertex-env status --profile prod --json"
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@profile_options
def status(options: dict[str, Any], as_json: bool) -> int:
    """Show the resolved configuration and where each value came from, the credential, and the token's life."""
    report, error = collect(options)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print(report)
    return error.exit_code if error else 0


def _print(report: dict[str, Any]) -> None:
    out = click.echo
    out(f"profile:      {report['profile'] or '(none)'}")
    cred = report.get("credential")
    if cred:
        out(
            f"credential:   {cred['type']} from {cred['origin']}"
            + (f" ({cred['path']})" if cred["path"] else "")
        )
        out(f"principal:    {cred.get('principal') or '(unknown)'}")
    for name, item in report["values"].items():
        value = "" if item["value"] is None else item["value"]
        out(f"{name + ':':<14}{value}  [{item['source']}]")
    out(f"base url:     {report.get('base_url') or '(needs a project)'}")
    token = report.get("token", {})
    if "error" in token:
        out(f"token:        error: {token['error']}")
    elif token:
        when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(token["expires_at"]))
        where = "cache" if token["from_cache"] else "minted now"
        out(f"token:        {token['masked']}  {token['countdown']} ({when}; {where})")
    if report.get("cache"):
        out(
            f"cache:        {report['cache']['path']}"
            + ("" if report["cache"]["enabled"] else " (bypassed)")
        )
    out(f"keyring:      {report['keyring']}")
    daemon = report.get("daemon")
    if daemon is not None:
        out(f"daemon:       {daemon.get('summary', daemon)}")
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}", err=True)

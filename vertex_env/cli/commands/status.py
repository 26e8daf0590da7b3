"""`vertex-env status`: every resolved value and where it came from, the credential, the token's life (masked)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import click

from vertex_env.cli.commands.options import profile_options
from vertex_env.environment import resolve
from vertex_env.system.diagnostics import speaker

log = logging.getLogger(__name__)


@click.command(
    epilog="\b\nExamples:\n  vertex-env status\n  vertex-env status --profile prod --json"
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@profile_options
def status(options: dict[str, Any], as_json: bool) -> int:
    """Show the resolved configuration and where each value came from, the credential, and the token's life."""
    from vertex_env.sinks.status import collect

    report, error = collect(resolve(**options))
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print(report)
    return error.exit_code if error else 0


#: What an unset value means, instead of a blank row.
_UNSET = {
    "project": "(not set)",
    "host": "(default: from the location)",
    "credentials": "(default: Application Default Credentials)",
    "impersonate": "(none)",
    "quota_project": "(none)",
}
#: The label column: `quota_project:` is the longest label, plus one space.
WIDTH = len("quota_project: ")


def _print(report: dict[str, Any]) -> None:
    def out(label: str, text: str) -> None:
        click.echo(f"{label + ':':<{WIDTH}}{text}")

    out("profile", report["profile"] or "(none)")
    if report.get("emulator"):
        out(
            "emulator",
            f"every Google call (tokens, IAM, metadata, Vertex AI) goes to the emulator at "
            f"{report['emulator']} (VERTEX_ENV_EMULATOR_HOST)",
        )
    cred = report.get("credential")
    if cred:
        out(
            "credential",
            f"{cred['type']} from {cred['origin']}"
            + (f" ({cred['path']})" if cred["path"] else ""),
        )
        out("principal", cred.get("principal") or "(unknown)")
    else:
        out("credential", "(none found: see token)")
    for name, item in report["values"].items():
        if item["value"] is None or item["value"] == "":
            out(name, _UNSET.get(name, "(none)"))
        else:
            out(name, f"{item['value']}  [{item['source']}]")
    out("base url", report.get("base_url") or "(needs a project)")
    token = report.get("token", {})
    if "error" in token:
        out("token", f"error: {token['error']}")
    elif token:
        when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(token["expires_at"]))
        where = "cache" if token["from_cache"] else "minted now"
        out("token", f"{token['masked']}  {token['countdown']} ({when}; {where})")
    if report.get("cache"):
        out(
            "cache",
            report["cache"]["path"] + ("" if report["cache"]["enabled"] else " (bypassed)"),
        )
    out("keyring", report["keyring"])
    daemon = report.get("daemon")
    if daemon is not None:
        out("daemon", str(daemon.get("summary", daemon)))
    for warning in report["warnings"]:
        log.warning(warning, extra=speaker(""))

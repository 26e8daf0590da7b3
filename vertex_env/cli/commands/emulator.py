"""`vertex-env emulator`: the offline Google + Vertex emulator in the foreground, until SIGINT/SIGTERM.

stdout carries only shell code (what to export to use it); everything for a person goes to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from vertex_env.cli.commands.options import emulator_options
from vertex_env.errors import ConfigError
from vertex_env.system.diagnostics import speaker

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from vertex_env.emulator.server import EmulatorState


_EXAMPLES = """\b
Examples:
  vertex-env emulator --port 8765 --write-credentials /tmp/emu > /tmp/emu.env &
  sleep 1; . /tmp/emu.env; vertex-env token
  VERTEX_ENV_EMULATOR_EXPIRES_IN=60 vertex-env emulator > emulator.env
"""


# The examples go in the epilog so that they come last, after the options, as in every command's help.
@click.command(epilog=_EXAMPLES)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    metavar="ADDRESS",
    help="Address to listen on. Anything but loopback exposes tokens and admin hooks to the network.",
)
@emulator_options
@click.option(
    "--allow-lifetime-extension",
    is_flag=True,
    help="Act as if the org policy iam.allowServiceAccountCredentialLifetimeExtension lists every "
    "service account: impersonated tokens may live up to 12 h (otherwise at most 1 h, as Google).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON line (url, host_port, credential files) instead of shell code.",
)
def emulator(
    host: str,
    emulator_port: int,
    expires_in: int,
    write_credentials: Path | None,
    allow_lifetime_extension: bool,
    as_json: bool,
) -> None:
    """Run the offline Google + Vertex emulator until Ctrl-C or SIGTERM.

    It serves Google's OAuth2 token endpoint, STS, IAM generateAccessToken, the GCE metadata server and
    Vertex's OpenAI-compatible chat completions and embeddings on one loopback port, as strictly as
    Google (GET /__emulator/ lists the admin API: faults, scripted replies, clock, config). Once listening it prints, for a
    POSIX shell, the variables that route vertex-env (and google-auth through it) there.
    """
    from vertex_env.emulator.server import EmulatorState, serve_forever
    from vertex_env.system.loopback import is_loopback

    if not is_loopback(host):
        log.warning(
            f"listening on {host}, not loopback: anyone who can reach it gets tokens and the admin API.",
            extra=speaker("vertex-env emulator"),
        )
    state = EmulatorState(expires_in=expires_in, lifetime_extension=allow_lifetime_extension)

    def on_ready(bound_host: str, bound_port: int) -> None:
        # A wildcard bind is reached through loopback on this machine.
        reach = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(bound_host, bound_host)
        host_port = f"[{reach}]:{bound_port}" if ":" in reach else f"{reach}:{bound_port}"
        url = f"http://{host_port}"
        files = _write_credentials(write_credentials, state) if write_credentials else {}
        if as_json:
            click.echo(json.dumps({"url": url, "host_port": host_port, "credentials": files}))
        else:
            from vertex_env.sinks.render import render

            exports = {"VERTEX_ENV_EMULATOR_HOST": host_port}
            if files:
                exports["GOOGLE_APPLICATION_CREDENTIALS"] = files["authorized_user"]
            click.echo(render(exports, "sh"), nl=False)  # the one printer of `export NAME=value;`
        sys.stdout.flush()  # a parent reading our stdout must see the exports now, not at exit
        log.info(
            f"listening on {url} (admin API at {url}/__emulator/stats)",
            extra=speaker("vertex-env emulator"),
        )
        for kind, path in files.items():
            log.info(f"wrote {kind} credentials to {path}", extra=speaker("vertex-env emulator"))
        log.info("press Ctrl-C to stop", extra=speaker("vertex-env emulator"))

    import asyncio

    try:
        asyncio.run(serve_forever(host, emulator_port, state=state, on_ready=on_ready))
    except OSError as err:
        from vertex_env.system.loopback import listen_error

        raise listen_error(host, emulator_port, err) from None
    log.info("stopped", extra=speaker("vertex-env emulator"))


def _write_credentials(directory: Path, state: EmulatorState) -> dict[str, str]:
    """Synthetic credential files for the emulator's users; the service account's key is registered."""
    from vertex_env.emulator.credfiles import (
        write_authorized_user,
        write_external_account,
        write_service_account,
    )

    directory = directory.resolve()  # GOOGLE_APPLICATION_CREDENTIALS must work from any directory
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return {
            "authorized_user": str(write_authorized_user(directory / "authorized_user.json")),
            "service_account": str(
                write_service_account(directory / "service_account.json", register_with=state)
            ),
            "external_account": str(
                write_external_account(
                    directory / "external_account.json",
                    subject_token_file=directory / "external_subject_token.jwt",
                )
            ),
        }
    except OSError as err:
        raise ConfigError(
            f"cannot write credentials to {directory}: {err.strerror or err}"
        ) from None

"""`vertex-env credentials import|remove`: keep credential JSON in the OS keyring instead of a plaintext file."""

from __future__ import annotations

import logging
import os
import sys

import click

from vertex_env.core import keyring_store
from vertex_env.core.credentials import CredentialSource, well_known_file
from vertex_env.errors import CredentialFileError
from vertex_env.system.diagnostics import speaker

log = logging.getLogger(__name__)


@click.group(
    epilog="\b\nExamples:\n  vertex-env credentials import key.json --name ci --remove-source\n  vertex-env profile set ci credentials=keyring:ci"
)
def credentials() -> None:
    """Keep long-lived credentials (ADC files, service-account keys) in the OS keyring."""


@credentials.command("import")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--name", default="default", show_default=True, help="Keyring entry name (use as keyring:NAME)."
)
@click.option(
    "--remove-source", is_flag=True, help="Delete the plaintext file after a successful import."
)
def import_(file: str | None, name: str, remove_source: bool) -> None:
    """Store a credential JSON in the OS keyring (default FILE: gcloud's ADC file; '-' reads stdin).

    \b
    Example:
      vertex-env credentials import ~/Downloads/sa-key.json --name prod --remove-source
    """
    from vertex_env.config.values import validate_credentials

    validate_credentials(f"keyring:{name}")
    if file == "-":
        content = sys.stdin.buffer.read()
        label = "<stdin>"
    else:
        path = file or str(well_known_file(os.environ))
        try:
            with open(path, "rb") as fh:
                content = fh.read()
        except OSError as err:
            raise CredentialFileError(
                f"cannot read credential file {path}: {err.strerror}"
            ) from None
        label = path
    info = CredentialSource(kind="file", origin="import", path=label, content=content).info()
    keyring_store.store_verified(name, content, label)
    log.info(f"stored {info['type']} credential from {label} as keyring:{name}", extra=speaker(""))
    if remove_source and file != "-":
        os.unlink(label)
        log.info(f"removed {label}", extra=speaker(""))


@credentials.command("remove", epilog="\b\nExample:\n  vertex-env credentials remove prod")
@click.argument("name")
def remove(name: str) -> None:
    """Delete a credential from the OS keyring."""
    if keyring_store.delete_entry(name):
        log.info(f"removed keyring:{name}", extra=speaker(""))
    else:
        raise CredentialFileError(f"no keyring entry {name!r}")

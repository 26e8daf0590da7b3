"""Where vertex-env's requests to Google go: the emulator switch (VERTEX_ENV_EMULATOR_HOST).

A leaf below both the configuration and the HTTP seam (vertex_env.core.transport), so that the seam depends on no
configuration module.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from vertex_env.config.values import HOST_PATTERN, shown
from vertex_env.errors import UsageError

EMULATOR_HOST_ENV = "VERTEX_ENV_EMULATOR_HOST"
#: Set by the transport seam on a request it rewrote to the emulator: the Google host it was meant for.
ORIGINAL_HOST_HEADER = "X-Vertex-Env-Original-Host"
_METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.google.internal.", "169.254.169.254", "metadata"}
)


def is_google_host(host: str) -> bool:
    """A host of Google's (APIs, accounts, the metadata server): what the seam reroutes to the emulator, and
    whose answers google_errors reads as "Google said no" rather than a local or network problem."""
    host = host.lower()
    return (
        host.endswith(".googleapis.com")
        or host == "googleapis.com"
        or host == "accounts.google.com"
        or host in _METADATA_HOSTS
    )


def emulator_host(environ: Mapping[str, str] | None = None) -> str | None:
    """`HOST:PORT` of the emulator when routing is on (VERTEX_ENV_EMULATOR_HOST), else None.

    `http://HOST:PORT` (with or without a trailing `/`) is taken as HOST:PORT; any other scheme or a path is
    refused (the emulator speaks plain HTTP on loopback)."""
    env = os.environ if environ is None else environ
    value = env.get(EMULATOR_HOST_ENV, "").strip()
    if value.lower().startswith("http://"):
        value = value[len("http://") :].rstrip("/")
    if (
        value
        and not re.fullmatch(HOST_PATTERN, value)
        and not re.fullmatch(r"\[[0-9a-fA-F:.]+\]:[0-9]{1,5}", value)
    ):
        raise UsageError(
            f"invalid {EMULATOR_HOST_ENV} {shown(env.get(EMULATOR_HOST_ENV, ''))}: expected HOST:PORT such as "
            "127.0.0.1:8765 (an http:// prefix is accepted; the emulator speaks plain HTTP)"
        )
    return value or None

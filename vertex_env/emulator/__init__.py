"""The offline Google + Vertex emulator: server, its state, the admin client and synthetic credential files.

`EmulatorServer` runs it on a background thread (tests, the demo); `vertex-env emulator` in the foreground.
"""

from __future__ import annotations

from vertex_env.emulator.admin import (
    CatalogEntry,
    DeployedEndpointInfo,
    EmulatorAdmin,
    EmulatorAdminError,
    Refusal,
    VertexRequest,
)
from vertex_env.emulator.credfiles import (
    authorized_user_info,
    write_authorized_user,
    write_external_account,
    write_external_account_authorized_user,
    write_impersonated_service_account,
    write_service_account,
)
from vertex_env.emulator.faults import EmulatorError, Fault, ScriptedReply
from vertex_env.emulator.server import EmulatorServer, build_app, run, serve_forever
from vertex_env.emulator.state import TOKEN_PREFIX, EmulatorState

__all__ = [
    "TOKEN_PREFIX",
    "CatalogEntry",
    "DeployedEndpointInfo",
    "EmulatorAdmin",
    "EmulatorAdminError",
    "EmulatorError",
    "EmulatorServer",
    "EmulatorState",
    "Fault",
    "Refusal",
    "ScriptedReply",
    "VertexRequest",
    "authorized_user_info",
    "build_app",
    "run",
    "serve_forever",
    "write_authorized_user",
    "write_external_account",
    "write_external_account_authorized_user",
    "write_impersonated_service_account",
    "write_service_account",
]

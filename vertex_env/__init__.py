"""vertex-env: fresh Vertex AI credentials for any OpenAI SDK.

The public API is re-exported here lazily, so `import vertex_env` stays cheap on the CLI's warm path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vertex_env._version import __version__

if TYPE_CHECKING:
    from vertex_env.environment import Environment, resolve
    from vertex_env.errors import VertexEnvError
    from vertex_env.tokens import Token, TokenSource

__all__ = ["Environment", "Token", "TokenSource", "VertexEnvError", "__version__", "resolve"]

_LAZY = {
    "Environment": "vertex_env.environment",
    "resolve": "vertex_env.environment",
    "Token": "vertex_env.tokens",
    "TokenSource": "vertex_env.tokens",
    "VertexEnvError": "vertex_env.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vertex_env' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

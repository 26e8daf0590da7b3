"""vertex-env: fresh Vertex AI credentials for any OpenAI SDK.

The public API is re-exported here lazily, so `import vertex_env` stays cheap on the CLI's warm path
(no google-auth, openai or httpx until a name that needs them is used).
"""

from __future__ import annotations

from vertex_env._version import __version__

TYPE_CHECKING = False  # typing stays off the warm `export` path (vertex_env.cli.entry)
if TYPE_CHECKING:
    from typing import Any

    from vertex_env.api import (
        AsyncTokenProvider,
        TokenProvider,
        async_openai_client,
        async_token_provider,
        httpx_auth,
        openai_client,
        token_provider,
    )
    from vertex_env.core.source import Token, TokenSource
    from vertex_env.environment import Environment, resolve
    from vertex_env.errors import VertexEnvError

__all__ = [
    "AsyncTokenProvider",
    "Environment",
    "Token",
    "TokenProvider",
    "TokenSource",
    "VertexEnvError",
    "__version__",
    "async_openai_client",
    "async_token_provider",
    "httpx_auth",
    "openai_client",
    "resolve",
    "token_provider",
]

_LAZY = {
    "Environment": "vertex_env.environment",
    "resolve": "vertex_env.environment",
    "Token": "vertex_env.core.source",
    "TokenSource": "vertex_env.core.source",
    "VertexEnvError": "vertex_env.errors",
    "AsyncTokenProvider": "vertex_env.api",
    "TokenProvider": "vertex_env.api",
    "async_openai_client": "vertex_env.api",
    "async_token_provider": "vertex_env.api",
    "httpx_auth": "vertex_env.api",
    "openai_client": "vertex_env.api",
    "token_provider": "vertex_env.api",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vertex_env' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

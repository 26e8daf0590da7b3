"""`run --proxy`: a child served by the loopback proxy for as long as it runs, tokens rotating underneath it.

The proxy lives on a background thread with its own event loop; the main thread spawns the child (it cannot
be exec'd: we must stay to serve it), forwards SIGINT/SIGTERM/SIGHUP to it, and returns its exact exit code
(128+N when a signal ended it). The proxy stops when the child exits.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from vertex_env.environment import API_KEY, BASE_URL, EXPIRES_AT, LEGACY_BASE, Environment
from vertex_env.proxy.server import KEY_ENV, BackgroundProxy, new_key
from vertex_env.sinks.exec_child import ACTIVE, child_environment, spawn_and_wait

__all__ = ["proxy_child_environment", "run_with_proxy"]


def proxy_child_environment(
    parent: Mapping[str, str],
    base_url: str,
    key: str,
    *,
    legacy: bool = False,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The child's environment: OPENAI_BASE_URL at the proxy, OPENAI_API_KEY the local key, no Google token.

    VERTEX_ENV_EXPIRES_AT is dropped (the local key does not expire) and so is VERTEX_ENV_PROXY_KEY (the child
    has its key in OPENAI_API_KEY; it has no use for the variable that fixed it). VERTEX_ENV_ACTIVE=proxy tells
    the prompt hooks in a shell started this way to leave the proxy's variables alone.
    """
    variables = {BASE_URL: base_url, API_KEY: key, **(extra or {})}
    if legacy:
        variables[LEGACY_BASE] = base_url
    env = child_environment(parent, variables)
    env.pop(EXPIRES_AT, None)
    env.pop(KEY_ENV, None)
    env[ACTIVE] = "proxy"
    if not legacy and env.get(LEGACY_BASE):
        env[LEGACY_BASE] = base_url  # a stale legacy base from the parent must not bypass the proxy
    return env


def run_with_proxy(
    env: Environment,
    argv: Sequence[str],
    *,
    parent_environ: Mapping[str, str] | None = None,
    legacy: bool = False,
    google: bool = False,
) -> int:
    """Serve `argv` through a fresh loopback proxy for `env`; return the child's exit code.

    Errors before the child starts (no credentials, command not found) raise VertexEnvError; once it runs, its
    exit code is returned as it is, never wrapped in an error of ours.
    """
    parent = os.environ if parent_environ is None else parent_environ
    with BackgroundProxy.for_environment(env, key=new_key()) as proxy:
        extra = (
            {"GOOGLE_CLOUD_PROJECT": env.project, "GOOGLE_CLOUD_LOCATION": env.location}
            if google
            else {}
        )
        child_env = proxy_child_environment(
            parent, proxy.base_url, proxy.key, legacy=legacy, extra=extra
        )
        # The child inherits the listening socket: were we killed, nobody else could bind the port it talks to
        # while it (or anything it started) lives; and the lifeline ends what we started.
        return spawn_and_wait(list(argv), child_env, keep_fds=proxy.listening_fds(), lifeline=True)

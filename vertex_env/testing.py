"""pytest plugin (entry point `pytest11`): fixtures that run an app's real OpenAI-client code offline.

`vertex_emulator` starts the bundled emulator (Google's OAuth2 token endpoint + Vertex chat completions) on a
free loopback port; `vertex_env_offline` also points this process at it: an ADC file, a private token cache,
`VERTEX_ENV_EMULATOR_HOST`, `OPENAI_BASE_URL` and `OPENAI_API_KEY`.

    def test_my_app_answers(vertex_env_offline):
        vertex_env_offline.emulator.reply_text("Paris")
        assert my_app.ask("Capital of France?") == "Paris"

The plugin is inert unless a test asks for a fixture: no hooks, no autouse fixtures, and the emulator (aiohttp)
is imported only when a fixture starts it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from vertex_env.emulator import EmulatorAdmin, EmulatorServer, Refusal, VertexRequest

__all__ = ["OfflineVertex", "VertexEmulator", "vertex_emulator", "vertex_env_offline"]

#: The project the offline environment uses (the emulator's own default project id).
OFFLINE_PROJECT = "emulated-project"
OFFLINE_LOCATION = "us-central1"

# Variables that would make the offline environment read the developer's real setup.
_CLEARED_PREFIXES = ("VERTEX_ENV_", "GOOGLE_", "CLOUDSDK_", "GCE_", "OPENAI_")
_KEPT = frozenset({"VERTEX_ENV_REQUIRE_TOOLS"})


class VertexEmulator:
    """A running emulator (fixture `vertex_emulator`): its URLs, and its admin API in a few plain methods.

    `.server` is the `EmulatorServer` (in-process `.state`), `.admin` the HTTP admin client, for anything else.
    """

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server

    # -- where it is ----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return self.server.url

    @property
    def host_port(self) -> str:
        """`127.0.0.1:PORT`, the value of VERTEX_ENV_EMULATOR_HOST."""
        return self.server.host_port

    @property
    def admin(self) -> EmulatorAdmin:
        return self.server.admin

    def chat_base_url(
        self,
        project: str = OFFLINE_PROJECT,
        location: str = OFFLINE_LOCATION,
        endpoint: str = "openapi",
        api_version: str = "v1",
    ) -> str:
        """An OPENAI_BASE_URL served by this emulator."""
        return self.server.chat_base_url(project, location, endpoint, api_version)

    # -- tokens ---------------------------------------------------------------------------------------

    def set_token_lifetime(self, seconds: int) -> None:
        """Tokens issued from now on live `seconds` (Google's default is 3600)."""
        self.admin.configure(expires_in=seconds)

    def expire_tokens(self) -> int:
        """Every token issued so far is refused (401) from now on; returns how many were live."""
        return self.admin.expire()

    # -- faults ---------------------------------------------------------------------------------------

    def fault(self, target: str = "any", **fault: Any) -> list[dict[str, Any]]:
        """Queue a fault for the next request(s) of `target` ("token", "chat", "any", …), e.g.
        `fault("token", status=503, count=2)`, `fault("chat", status=429)`, `fault("token", delay=1.0)`."""
        return self.admin.fault(target, **fault)

    def clear_faults(self) -> None:
        self.admin.clear_faults()

    # -- scripted chat answers ------------------------------------------------------------------------

    def reply_text(self, text: str, *, repeat: bool = False) -> None:
        """The next chat completion (every one, with `repeat=True`) answers `text`, streamed or not."""
        self.admin.reply(text, repeat=repeat)

    def reply_tool_call(
        self,
        name: str,
        arguments: Mapping[str, Any] | str | None = None,
        *,
        call_id: str | None = None,
        repeat: bool = False,
    ) -> None:
        """The next chat completion asks for one tool call (finish_reason "tool_calls")."""
        call: dict[str, Any] = {
            "name": name,
            "arguments": arguments if isinstance(arguments, str) else dict(arguments or {}),
        }
        if call_id is not None:
            call["id"] = call_id
        self.admin.reply(tool_calls=[call], repeat=repeat)

    def reply_tool_calls(self, calls: list[dict[str, Any]], *, repeat: bool = False) -> None:
        """Several tool calls, each `{"name": ..., "arguments": {...}}` or OpenAI's own tool_call shape."""
        self.admin.reply(tool_calls=calls, repeat=repeat)

    def reply_error(self, status: int, body: Any = None, *, repeat: bool = False) -> None:
        """The next chat completion fails with HTTP `status` (and Google's error JSON, or `body`)."""
        self.admin.reply(status=status, body=body, repeat=repeat)

    def clear_replies(self) -> None:
        self.admin.clear_replies()

    # -- Google's refusals ----------------------------------------------------------------------------

    def refuse(self, project: str, refusal: Refusal) -> None:
        """Vertex refuses `project` from now on as Google does, e.g. `refuse(project, "SERVICE_DISABLED")`
        (also IAM_PERMISSION_DENIED, BILLING_DISABLED, RESOURCE_EXHAUSTED, …: docs/emulator.md)."""
        self.admin.refuse(project, refusal)

    def allow(self, project: str | None = None, refusal: Refusal | None = None) -> None:
        """Switch refusals off again (all of them without arguments)."""
        self.admin.allow(project, refusal)

    def vertex_requests(self) -> list[VertexRequest]:
        """Each Vertex request so far: host, project, location, endpoint, model, status, refusal reason."""
        return self.admin.vertex_requests()

    # -- what happened --------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """All counters: requests per kind, tokens issued, chat ok/rejected, faults applied, …"""
        return self.admin.stats()

    def request_count(self, kind: str) -> int:
        """Requests received of one kind: "token", "chat", "iam", "metadata" or "other"."""
        return int(self.stats()["requests"].get(kind, 0))

    @property
    def token_requests(self) -> int:
        return self.request_count("token")

    @property
    def chat_requests(self) -> int:
        return self.request_count("chat")

    @property
    def chat_rejected(self) -> int:
        """Chat requests refused for an unknown or expired token (401)."""
        return int(self.stats()["chat_rejected"])

    def chat_bodies(self) -> list[Any]:
        """The JSON bodies of recent chat requests, oldest first: what the app sent."""
        return [record["body"] for record in self.admin.requests()["chat"]]

    def reset(self) -> None:
        """Forget issued tokens, faults, replies and counters."""
        self.admin.reset()

    def __repr__(self) -> str:
        return f"VertexEmulator({self.url})"


class OfflineVertex:
    """What `vertex_env_offline` set up: this process talks to the emulator as if it were Google and Vertex."""

    def __init__(
        self,
        emulator: VertexEmulator,
        *,
        credentials_path: Path,
        cache_dir: Path,
        environ: dict[str, str],
    ) -> None:
        self.emulator = emulator
        self.credentials_path = credentials_path
        self.cache_dir = cache_dir
        #: The variables the fixture set (OPENAI_BASE_URL, OPENAI_API_KEY, VERTEX_ENV_*, …).
        self.environ = environ

    @property
    def base_url(self) -> str:
        return self.environ["OPENAI_BASE_URL"]

    @property
    def project(self) -> str:
        return self.environ["VERTEX_ENV_PROJECT"]

    @property
    def location(self) -> str:
        return self.environ["VERTEX_ENV_LOCATION"]

    def expire_tokens(self) -> int:
        """Every token issued so far dies: the emulator answers 401 to it and the shared cache forgets it.

        Code holding a token in memory (a token provider, a client given a string key, OPENAI_API_KEY) finds out
        from the 401; `vertex_env.openai_client()` and `httpx_auth()` retry it once with a new token.
        """
        expired = self.emulator.expire_tokens()
        self.clear_cache()
        return expired

    def clear_cache(self) -> None:
        """Empty the private token cache (the next token request goes to the emulator)."""
        from vertex_env.core.cache import TokenCache

        TokenCache(self.cache_dir).clear()

    def refresh_api_key(self) -> str:
        """Put a fresh token in OPENAI_API_KEY (what `eval $(vertex-env export)` does) and return it."""
        from vertex_env.environment import resolve

        value = resolve().token().value
        os.environ["OPENAI_API_KEY"] = self.environ["OPENAI_API_KEY"] = value
        return value

    def __repr__(self) -> str:
        return f"OfflineVertex(base_url={self.base_url!r})"


@pytest.fixture
def vertex_emulator() -> Iterator[VertexEmulator]:
    """A running emulator on a free loopback port, stopped after the test."""
    from vertex_env.emulator import EmulatorServer

    with EmulatorServer() as server:
        yield VertexEmulator(server)


@pytest.fixture
def vertex_env_offline(
    vertex_emulator: VertexEmulator,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> OfflineVertex:
    """This process pointed at `vertex_emulator`: ADC file, private token cache, OPENAI_BASE_URL, OPENAI_API_KEY.

    Google's, gcloud's, OpenAI's and vertex-env's own variables are cleared first, so the test never sees the
    developer's real credentials, config or project. One token is minted at setup (it is OPENAI_API_KEY).
    """
    from vertex_env.emulator import write_authorized_user
    from vertex_env.environment import resolve

    root = tmp_path_factory.mktemp("vertex-env-offline")
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) and name not in _KEPT:
            monkeypatch.delenv(name)
    credentials = write_authorized_user(root / "application_default_credentials.json")
    cache = root / "cache"
    environ = {
        "GOOGLE_APPLICATION_CREDENTIALS": str(credentials),
        "CLOUDSDK_CONFIG": str(root / "gcloud"),
        "NO_GCE_CHECK": "true",
        "VERTEX_ENV_CONFIG": str(root / "config.toml"),
        "VERTEX_ENV_CACHE_DIR": str(cache),
        "VERTEX_ENV_EMULATOR_HOST": vertex_emulator.host_port,
        "VERTEX_ENV_PROJECT": OFFLINE_PROJECT,
        "VERTEX_ENV_LOCATION": OFFLINE_LOCATION,
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    from vertex_env.system.loopback import bypass_proxy_for_loopback

    bypass = dict(os.environ)  # the app under test goes direct to the emulator, as vertex-env does
    bypass_proxy_for_loopback(bypass, vertex_emulator.url)
    for name in ("NO_PROXY", "no_proxy"):
        if name in bypass:
            monkeypatch.setenv(name, bypass[name])
    env = resolve()
    openai_vars = {"OPENAI_BASE_URL": env.base_url, "OPENAI_API_KEY": env.token().value}
    for name, value in openai_vars.items():
        monkeypatch.setenv(name, value)
    return OfflineVertex(
        vertex_emulator,
        credentials_path=credentials,
        cache_dir=cache,
        environ={**environ, **openai_vars},
    )

"""The in-process Python API: token providers, OpenAI client constructors and an httpx auth, all on one token path.

Everything here gets its token from `TokenSource.get()` (the shared, locked cache) and keeps an in-memory copy, so
a call costs a clock read while the token has more than the margin left. openai and httpx are imported only by
the functions that need them.

    import openai
    import vertex_env

    env = vertex_env.resolve()
    client = openai.OpenAI(base_url=env.base_url, api_key=vertex_env.token_provider(env))
    reply = client.chat.completions.create(
        model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "Hello"}]
    )
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
from collections.abc import AsyncGenerator, Generator, Mapping
from typing import TYPE_CHECKING, Any

from vertex_env.core.source import HeldToken, Token
from vertex_env.environment import RESOLVE_OPTIONS, Environment, resolve
from vertex_env.errors import ConfigError

if TYPE_CHECKING:
    import httpx
    import openai

__all__ = [
    "AsyncTokenProvider",
    "TokenProvider",
    "async_openai_client",
    "async_token_provider",
    "httpx_auth",
    "openai_client",
    "token_provider",
]

QUOTA_PROJECT_HEADER = "x-goog-user-project"
_OPENAI_EXTRA = "pip install 'vertex-env[openai]'"


class TokenProvider:
    """A callable returning a fresh access token: `provider()` → `"ya29...."`, for `openai.OpenAI(api_key=...)`.

    A thin adapter over `tokens.HeldToken`: it serves an in-memory copy while that has more than the margin left
    (`Token.fresh`: `min_ttl`, at most half the token's life) and no other process replaced the shared
    cache entry, else asks the shared token cache, which mints at most once for every thread and process of the
    user. Thread-safe; after `os.fork()` the child starts with fresh locks and no in-memory copy.
    """

    def __init__(self, environment: Environment, *, min_ttl: float | None = None) -> None:
        if min_ttl is not None and min_ttl < 0:
            raise ConfigError(f"invalid min TTL {min_ttl}s: expected 0 or more seconds")
        self.environment = environment
        self.min_ttl = float(environment.profile.min_ttl if min_ttl is None else min_ttl)
        self.held = HeldToken(environment.token_source, self.min_ttl)

    @property
    def _lock(self) -> threading.Lock:  # the lock a fetch holds (tests watch it)
        return self.held._lock

    def __call__(self) -> str:
        return self.held.get().value

    def token(self) -> Token:
        """The current token (value, expiry, principal); may block while the first caller mints."""
        return self.held.get()

    async def atoken(self) -> Token:
        """`token()` without blocking the running event loop: a mint runs in the loop's default executor, and
        concurrent callers in one loop wait for the same mint."""
        return await self.held.aget()

    def invalidate(self, value: str | Token | None = None) -> None:
        """Forget the token (only if it is still `value`, when given), here and in the shared cache: the server
        refused it. The next call mints a new one."""
        self.held.invalidate(value.value if isinstance(value, Token) else value)

    def __repr__(self) -> str:  # never show the token
        return f"TokenProvider(base_url={self.environment.base_url!r}, min_ttl={self.min_ttl:g})"


class AsyncTokenProvider:
    """The async twin of TokenProvider, for `openai.AsyncOpenAI(api_key=...)`: `await provider()` → a token.

    Minting runs in a worker thread, so the event loop keeps running; concurrent callers share one mint.
    """

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider

    @property
    def environment(self) -> Environment:
        return self.provider.environment

    async def __call__(self) -> str:
        return (await self.provider.held.aget()).value

    async def token(self) -> Token:
        return await self.provider.held.aget()

    async def invalidate(self, value: str | Token | None = None) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.provider.invalidate, value)

    def __repr__(self) -> str:
        return f"Async{self.provider!r}"


def _environment(profile: str | Environment | None, overrides: Mapping[str, Any]) -> Environment:
    if isinstance(profile, Environment):
        if overrides:
            raise TypeError("pass either an Environment or profile options, not both")
        return profile
    return resolve(profile, **overrides)


def token_provider(
    profile: str | Environment | None = None, *, min_ttl: float | None = None, **overrides: Any
) -> TokenProvider:
    """A callable that returns a fresh Vertex AI access token each time it is called.

    `profile` is a profile name or an `Environment` from `resolve()`; keyword options are those of `resolve()`
    (project=, location=, credentials=, impersonate=, …). `min_ttl` is the least life, in seconds, a returned
    token has left (default: the profile's, 5 minutes). openai-python calls a callable `api_key` before every
    request (openai >= 1.106), so the client never sends a stale token:

        import openai
        import vertex_env

        env = vertex_env.resolve()
        client = openai.OpenAI(base_url=env.base_url, api_key=vertex_env.token_provider(env))
        reply = client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "Hello"}]
        )
        print(reply.choices[0].message.content)

    Configuration errors (no project, bad option) raise `VertexEnvError` here; credential errors on the first call.
    """
    return TokenProvider(_environment(profile, overrides), min_ttl=min_ttl)


def async_token_provider(
    profile: str | Environment | None = None, *, min_ttl: float | None = None, **overrides: Any
) -> AsyncTokenProvider:
    """`token_provider()` for asyncio: an async callable, for `openai.AsyncOpenAI(api_key=...)`.

    A mint runs in a worker thread, so the event loop keeps serving other tasks; concurrent callers share it.

        env = vertex_env.resolve()
        client = openai.AsyncOpenAI(base_url=env.base_url, api_key=vertex_env.async_token_provider(env))
        reply = await client.chat.completions.create(model="google/gemini-2.5-flash", messages=messages)
    """
    return AsyncTokenProvider(token_provider(profile, min_ttl=min_ttl, **overrides))


class _BearerFlows:
    """The auth flow of `httpx_auth()`, shared by every httpx flavour (httpx and openai 3's httpx2 have the same
    Auth protocol): set the bearer token; on 401 replace it and retry once (`tokens.Attempt`)."""

    requires_request_body = True  # the body is sent twice when a 401 is retried

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider
        self._quota_project = provider.environment.profile.quota_project

    def _authorize(self, request: Any, token: Token) -> None:
        request.headers["Authorization"] = f"Bearer {token.value}"
        if self._quota_project and QUOTA_PROJECT_HEADER not in request.headers:
            request.headers[QUOTA_PROJECT_HEADER] = self._quota_project

    def sync_auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        request.read()
        attempt = self.provider.held.authorize()
        self._authorize(request, attempt.token)
        response = yield request
        if attempt.refused(response.status_code):
            self._authorize(request, attempt.replace())
            response = yield request
            attempt.settle(response.status_code)

    async def async_auth_flow(self, request: Any) -> AsyncGenerator[Any, Any]:
        await request.aread()
        attempt = await self.provider.held.aauthorize()
        self._authorize(request, attempt.token)
        response = yield request
        if attempt.refused(response.status_code):
            self._authorize(request, await attempt.areplace())
            response = yield request
            await attempt.asettle(response.status_code)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.provider!r})"


_AUTH_CLASSES: dict[type[Any], type[Any]] = {}


def _bearer_auth(provider: TokenProvider, auth_base: type[Any]) -> Any:
    """An instance of `auth_base` (httpx.Auth or httpx2.Auth) running `_BearerFlows`."""
    cls = _AUTH_CLASSES.get(auth_base)
    if cls is None:
        cls = type(
            "VertexAuth",
            (_BearerFlows, auth_base),
            {"__module__": __name__, "__doc__": _BearerFlows.__doc__},
        )
        _AUTH_CLASSES[auth_base] = cls
    return cls(provider)


def httpx_auth(
    profile: str | Environment | None = None, *, min_ttl: float | None = None, **overrides: Any
) -> httpx.Auth:
    """An `httpx.Auth` that sends a fresh bearer token and, on a 401, invalidates it and retries once.

    For SDKs that take an httpx client but not a callable key (sync and async clients alike; the async flow
    mints in a worker thread):

        import httpx
        import vertex_env

        env = vertex_env.resolve()
        with httpx.Client(auth=vertex_env.httpx_auth(env)) as http:
            http.post(f"{env.base_url}/chat/completions", json={...})
    """
    try:
        import httpx
    except ImportError as err:
        raise ImportError(
            "vertex_env.httpx_auth() needs the httpx package: pip install 'vertex-env[httpx]'",
            name="httpx",
        ) from err
    auth: httpx.Auth = _bearer_auth(
        token_provider(profile, min_ttl=min_ttl, **overrides), httpx.Auth
    )
    return auth


def _import_openai(function: str) -> Any:
    try:
        import openai
    except ImportError as err:
        raise ImportError(
            f"vertex_env.{function}() needs the openai package, an optional extra: {_OPENAI_EXTRA}",
            name="openai",
        ) from err
    return openai


def _split_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take vertex-env's options (project=, location=, …) out of `kwargs`; the rest go to the OpenAI client.

    `timeout=` is the OpenAI client's own; vertex-env's token timeout comes from VERTEX_ENV_TIMEOUT there."""
    return {
        name: kwargs.pop(name)
        for name in list(kwargs)
        if name in RESOLVE_OPTIONS and name != "timeout"
    }


def _auth_base_of(client_class: type[Any]) -> type[Any] | None:
    """The Auth class of the httpx flavour `client_class` is built on (httpx, or httpx2 for openai 3)."""
    for cls in client_class.__mro__:
        if cls.__name__ in ("Client", "AsyncClient"):
            package = sys.modules.get(cls.__module__.partition(".")[0])
            auth = getattr(package, "Auth", None)
            return auth if isinstance(auth, type) else None
    return None


def _sdk_http_client_class(sdk: Any, flavour: str) -> type[Any]:
    """The HTTP client class the SDK builds for itself: its defaults, and closed when garbage collected like
    the SDK's own (openai's private `*HttpxClientWrapper`; its public `Default*HttpxClient` otherwise)."""
    wrapper = getattr(getattr(sdk, "_base_client", None), f"{flavour}HttpxClientWrapper", None)
    if isinstance(wrapper, type):
        return wrapper
    public: type[Any] = getattr(
        sdk, "DefaultHttpxClient" if flavour == "Sync" else "DefaultAsyncHttpxClient"
    )
    return public


def _accepts_callable_key(client_class: type[Any]) -> bool:
    annotation = inspect.signature(client_class.__init__).parameters["api_key"].annotation
    return "Callable" in str(annotation)


def _client_kwargs(
    provider: TokenProvider,
    kwargs: dict[str, Any],
    *,
    client_class: type[Any],
    http_client_class: type[Any],
    api_key: Any,
) -> dict[str, Any]:
    env = provider.environment
    result: dict[str, Any] = {"base_url": env.base_url}
    if _accepts_callable_key(client_class):
        result["api_key"] = api_key
    else:  # openai < 1.106: a placeholder key; the auth below sets the real token on every request
        result["api_key"] = "vertex-env"
    headers = dict(kwargs.pop("default_headers", None) or {})
    if env.profile.quota_project:
        headers = {QUOTA_PROJECT_HEADER: env.profile.quota_project, **headers}
    if headers:
        result["default_headers"] = headers
    if "http_client" not in kwargs:
        auth_base = _auth_base_of(http_client_class)
        if auth_base is not None:
            result["http_client"] = http_client_class(auth=_bearer_auth(provider, auth_base))
    return {**result, **kwargs}


def openai_client(
    profile: str | Environment | None = None, *, min_ttl: float | None = None, **kwargs: Any
) -> openai.OpenAI:
    """An `openai.OpenAI` client for Vertex AI whose token never goes stale.

    Keyword arguments named like vertex-env's options (project=, location=, endpoint=, credentials=,
    impersonate=, quota_project=, …) configure vertex-env — `project` is the Google Cloud project; every other
    one (timeout=, max_retries=, default_headers=, …) goes to `openai.OpenAI`. The client gets the Vertex base
    URL, a token provider as its `api_key`, `x-goog-user-project` when a quota project is set, and an HTTP
    client whose auth retries a 401 once with a new token (unless you pass your own `http_client`).
    Needs the optional extra: `pip install 'vertex-env[openai]'`.

    Chat:

        client = vertex_env.openai_client()
        reply = client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "Hello"}]
        )
        print(reply.choices[0].message.content)

    Streaming:

        stream = client.chat.completions.create(model=MODEL, messages=messages, stream=True)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                print(chunk.choices[0].delta.content, end="")

    Tools:

        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
        reply = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
        for call in reply.choices[0].message.tool_calls or []:
            print(call.function.name, json.loads(call.function.arguments))

    Structured output (`client.chat.completions.parse`; openai < 1.92 has it as `client.beta.chat...`):

        class Answer(pydantic.BaseModel):
            city: str
            population: int

        reply = client.chat.completions.parse(model=MODEL, messages=messages, response_format=Answer)
        answer = reply.choices[0].message.parsed
    """
    sdk = _import_openai("openai_client")
    provider = token_provider(profile, min_ttl=min_ttl, **_split_options(kwargs))
    client: openai.OpenAI = sdk.OpenAI(
        **_client_kwargs(
            provider,
            kwargs,
            client_class=sdk.OpenAI,
            http_client_class=_sdk_http_client_class(sdk, "Sync"),
            api_key=provider,
        )
    )
    return client


def async_openai_client(
    profile: str | Environment | None = None, *, min_ttl: float | None = None, **kwargs: Any
) -> openai.AsyncOpenAI:
    """`openai_client()` for asyncio: an `openai.AsyncOpenAI` whose token mints never block the event loop.

    Same arguments as `openai_client()`:

        client = vertex_env.async_openai_client()
        reply = await client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "Hello"}]
        )
    """
    sdk = _import_openai("async_openai_client")
    provider = token_provider(profile, min_ttl=min_ttl, **_split_options(kwargs))
    client: openai.AsyncOpenAI = sdk.AsyncOpenAI(
        **_client_kwargs(
            provider,
            kwargs,
            client_class=sdk.AsyncOpenAI,
            http_client_class=_sdk_http_client_class(sdk, "Async"),
            api_key=AsyncTokenProvider(provider),
        )
    )
    return client

"""The authenticated loopback proxy: a per-run local key in, a fresh Google token out, to the Vertex base only.

A client (any OpenAI SDK) talks to `http://127.0.0.1:PORT/v1/projects/P/locations/L/endpoints/E/...` with
`Authorization: Bearer KEY`. The proxy checks the key in constant time, swaps it for a Google access token
from the shared token core, adds `x-goog-user-project` when a quota project is set, and forwards the request
to the configured Vertex base URL only — never anywhere else, so it is not an open proxy. Bodies pass through
byte for byte both ways; server-sent events are relayed chunk by chunk as they arrive. An upstream 401
(a token Google no longer accepts) invalidates the token, mints once and retries once, before any byte of the
answer has reached the client.

`LoopbackProxy` is the asyncio server; `BackgroundProxy` runs one on its own thread and event loop (for
`run --proxy` and tests); `vertex-env serve` runs one in the foreground.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from vertex_env.core.source import HeldToken
from vertex_env.environment import API_KEY, BASE_URL, Environment
from vertex_env.errors import ConfigError, VertexEnvError
from vertex_env.proxy.events import ProxyEvents
from vertex_env.proxy.gate import REQUEST_DROP, RESPONSE_DROP, Gate, error, filtered
from vertex_env.proxy.guard import ConnectionGuard, GuardedSite, RateLimitedLog, quiet_server_logger
from vertex_env.proxy.models import (
    ROUTED_SUFFIXES,
    UPSTREAM_KEY,
    ModelDirectory,
    Upstream,
    google_message,
    model_id_from,
    model_of,
    original_host_headers,
)
from vertex_env.proxy.refusal_log import MAX_KEPT, UpstreamRefusals
from vertex_env.proxy.throttle import WrongKeyThrottle
from vertex_env.system.hardening import raise_open_file_limit
from vertex_env.system.loop_thread import LoopThread
from vertex_env.system.loopback import (
    DEFAULT_HOST,
    KEY_ENV,
    check_key,
    check_listen,
    check_loopback,
    goes_direct,
    is_loopback,
    listen_error,
    new_key,
)

if TYPE_CHECKING:
    import ssl

    from vertex_env.core.source import TokenSource

__all__ = [
    "DEFAULT_HOST",
    "KEY_ENV",
    "MAX_BODY",
    "BackgroundProxy",
    "LoopbackProxy",
    "ProxyStats",
    "check_loopback",
    "describe",
    "new_key",
]

log = logging.getLogger("vertex_env.proxy.server")
T = TypeVar("T")

#: A connection must send a request with the key this soon after it opens, or it is closed.
HEADER_TIMEOUT = 10.0
#: Most client connections held at once (fewer when the open-file limit is low; see connection_cap).
MAX_CONNECTIONS = 1024
#: Largest request body accepted (413 beyond): room for several inline images, not for abuse.
MAX_BODY = 32 * 1024 * 1024
#: Idle keep-alive connections from clients are closed after this many seconds.
KEEPALIVE_TIMEOUT = 75.0
# Headers aiohttp's client would otherwise invent: only what the client sent goes upstream.
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
# What a bearer token may hold: visible ASCII (RFC 6750's b64token and more), nothing a header cannot carry.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
# Answers of known length up to this size are relayed in one write; longer ones, and every stream, chunk by chunk.
_WHOLE_BODY_LIMIT = 1024 * 1024


@dataclass
class ProxyStats:
    """Counters for tests, `serve` and the benchmark. Never holds a key or a token."""

    requests: int = 0
    forwarded: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    upstream_401_retries: int = 0
    token_fetches: int = 0
    upstream_errors: int = 0

    def refuse(self, status: int) -> None:
        self.refused[status] = self.refused.get(status, 0) + 1

    def fetched(self) -> None:
        self.token_fetches += 1


def connection_cap(open_files: int) -> int:
    """Client connections to allow under an open-file limit: each may need an upstream socket too, and the
    upstream pool (256), the event loop and the executor keep some handles of their own."""
    return max(16, min(MAX_CONNECTIONS, (open_files - 320) // 2))


class LoopbackProxy:
    """The proxy's asyncio server: `await start()`, `base_url`, `await close()`.

    `upstream` is the Vertex base URL (`Environment.base_url`); only paths under its path are served.
    """

    def __init__(
        self,
        *,
        upstream: str,
        token_source: TokenSource,
        key: str | None = None,
        quota_project: str | None = None,
        min_ttl: float = 300,
        host: str = DEFAULT_HOST,
        port: int = 0,
        max_body: int = MAX_BODY,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
        connect_timeout: float = 10.0,
        read_timeout: float = 300.0,
        max_connections: int | None = None,
        header_timeout: float = HEADER_TIMEOUT,
        allow_hosts: Iterable[str] = (),
        tls: ssl.SSLContext | None = None,
        models: ModelDirectory | None = None,
    ) -> None:
        # Beyond loopback only with a fixed key (vertex_env.system.loopback.check_listen).
        self.host = check_listen(host, key is not None)
        self.port = port
        self.key = check_key(key) if key is not None else new_key()
        self.allow_hosts = tuple(allow_hosts)
        self.tls = tls
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ConfigError(f"invalid upstream base URL {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self.base_path = parts.path.rstrip("/")
        self.gate = Gate(self.key, self.host, self.base_path, self.allow_hosts)
        self.quota_project = quota_project
        # /models answered here, and where a request naming a model goes (vertex_env.proxy.models).
        self.models = models or ModelDirectory(default=Upstream(self.upstream))
        self.max_body = max_body
        self.keepalive_timeout = keepalive_timeout
        self.timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout,
            sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        self.stats = ProxyStats()
        self.tokens = HeldToken(token_source, min_ttl, on_fetch=self.stats.fetched)
        self.refusals = UpstreamRefusals(self.upstream, quota_project, self.tokens)
        # A corporate HTTPS_PROXY may be the only way to Google; a loopback upstream (the emulator) never is.
        self._trust_env = not goes_direct(upstream)
        self._via: tuple[URL | None, dict[str, str] | None] = (None, None)
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        # Hook points for `serve` (vertex_env.proxy.serving): an observer, routes added before the catch-all,
        # and how long close() lets in-flight requests and streams finish.
        self.events = ProxyEvents()
        self.app_hooks: list[Callable[[web.Application], None]] = []
        self.shutdown_timeout = 1.0
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.lines = RateLimitedLog(log)
        # Wrong keys counted per client address, repeated ones cut off a while: beyond loopback only.
        self.throttle = None if is_loopback(self.host) else WrongKeyThrottle(self.lines)
        self.guard: ConnectionGuard | None = None
        # The task of each request being served, for a forced stop (abort_in_flight).
        self._in_flight: set[asyncio.Task[Any]] = set()

    @classmethod
    def for_environment(
        cls,
        env: Environment,
        *,
        key: str | None = None,
        host: str = DEFAULT_HOST,
        port: int = 0,
        allow_hosts: Iterable[str] = (),
        tls: ssl.SSLContext | None = None,
    ) -> LoopbackProxy:
        """A proxy to `env.base_url` with tokens from `env.token_source` and the profile's quota project."""
        return cls(
            upstream=env.base_url,
            token_source=env.token_source,
            key=key,
            quota_project=env.profile.quota_project,
            min_ttl=env.profile.min_ttl,
            host=host,
            port=port,
            allow_hosts=allow_hosts,
            tls=tls,
            models=ModelDirectory.for_environment(env),
        )

    @property
    def wildcard(self) -> bool:
        """Listening on every interface (0.0.0.0 or ::)."""
        return self.gate.wildcard

    def origin_for(self, host: str) -> str:
        """`scheme://host:port` of this proxy reached by `host` (a name or an address)."""
        name = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls is not None else 'http'}://{name}:{self.port}"

    @property
    def origin(self) -> str:
        """The origin a client on this machine uses: the address listened on, or for 0.0.0.0 and :: the
        loopback address of the same family (a wildcard is no address to connect to)."""
        if self.wildcard:
            return self.origin_for("::1" if ":" in self.host else "127.0.0.1")
        return self.origin_for(self.host)

    @property
    def base_url(self) -> str:
        """The OPENAI_BASE_URL a client uses: same path shape as the Vertex base, on the proxy."""
        return self.origin + self.base_path

    @property
    def base_urls(self) -> list[str]:
        """Every base URL a client may use: `base_url`, then one per name allowed with --allow-host."""
        urls = [self.base_url]
        for name in self.allow_hosts:
            url = self.origin_for(name) + self.base_path
            if url not in urls:
                urls.append(url)
        return urls

    def variables(self) -> dict[str, str]:
        """OPENAI_BASE_URL and OPENAI_API_KEY for a client of this proxy."""
        return {BASE_URL: self.base_url, API_KEY: self.key}

    async def start(self, *, prime: bool = True) -> None:
        """Bind and serve. With `prime`, fetch a token first, so a credential problem fails here, not later."""
        if prime:
            await self.tokens.aget()
        open_files = raise_open_file_limit()
        cap = self.max_connections or connection_cap(open_files)
        self.guard = guard = ConnectionGuard(
            cap,
            self.header_timeout,
            self.lines,
            blocked=self.throttle.blocked if self.throttle is not None else None,
            on_cut=lambda: self.events.connection_cut(),
        )
        loop = asyncio.get_running_loop()
        if loop.get_exception_handler() is None:
            loop.set_exception_handler(guard.loop_exception_handler(None))
        connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=30, ttl_dns_cache=300)
        # The environment's proxy for the upstream, read once: aiohttp's trust_env re-reads the environment
        # and ~/.netrc in a worker thread on every request, and adds a netrc login (a `default` entry matches
        # every host) beside our Authorization header, which it then refuses.
        self._via = _environment_proxy(self.upstream) if self._trust_env else (None, None)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout,
            auto_decompress=False,
            skip_auto_headers=_NO_AUTO_HEADERS,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        app = web.Application(client_max_size=self.max_body)
        for hook in self.app_hooks:
            hook(app)
        app.router.add_route("*", "/{tail:.*}", self._tracked)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=self.keepalive_timeout,
            auto_decompress=False,
            shutdown_timeout=self.shutdown_timeout,
            logger=quiet_server_logger(self.lines),
        )
        try:
            await runner.setup()
            site = GuardedSite(runner, self.host, self.port, guard, self.tls)
            await site.start()
        except OSError as err:
            await runner.cleanup()
            await self._session.close()
            self._session = None
            raise listen_error(self.host, self.port, err) from None
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self.gate.listening(self.port)
        self.models.fetch = self._get_json
        self.models.warn = self.lines.warn
        log.info("proxy listening on %s, forwarding to %s", self.base_url, self.upstream)

    def abort_in_flight(self) -> int:
        """Cancel every request still being served (a forced stop); how many there were.

        Cancelling close() alone is not enough on Python 3.10: aiohttp's graceful shutdown cannot tell that
        cancellation from its own timeout there (no Task.cancelling()), swallows it and waits out the whole drain
        for the requests still open. With their tasks cancelled it has nothing left to wait for.
        """
        tasks = list(self._in_flight)
        for task in tasks:
            task.cancel()
        return len(tasks)

    def listening_fds(self) -> list[int]:
        """The descriptors of the listening sockets, for a child to inherit (`run --proxy`)."""
        runner = self._runner
        if runner is None:
            return []
        return [
            fd
            for site in runner.sites
            if isinstance(site, GuardedSite)
            for fd in site.listening_fds()
        ]

    async def close(self) -> None:
        runner, session = self._runner, self._session
        self._runner = self._session = None
        try:
            await self.models.close()
            if runner is not None:
                await runner.cleanup()
        finally:  # also when a second signal cancels the drain: never leave the upstream session open
            if session is not None:
                await session.close()

    def __repr__(self) -> str:  # never the key, never a token
        return f"LoopbackProxy(base_url={self.base_url!r}, upstream={self.upstream!r})"

    async def __aenter__(self) -> LoopbackProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the request path ------------------------------------------------------------------------------

    async def _tracked(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - aiohttp runs every handler in a task
            return await self._handle(request)
        self._in_flight.add(task)
        try:
            return await self._handle(request)
        finally:
            self._in_flight.discard(task)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.stats.requests += 1
        refusal = self.gate.refusal(request, self.guard)
        if refusal is not None:
            if refusal.status == 401 and self.throttle is not None:
                refusal = self._count_wrong_key(request, refusal)
            self.stats.refuse(refusal.status)
            self.events.refused(request, refusal.status)
            return refusal
        suffix = request.raw_path[len(self.base_path) :]
        route = suffix.split("?", 1)[0]
        if route == "/models" or route.startswith("/models/"):
            return await self._answer_models(
                request, route
            )  # Vertex has no such route: never forwarded
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.stats.refuse(413)
            self.events.refused(request, 413)
            return error(
                413, f"vertex-env proxy: request body over {self.max_body} bytes", "too_large"
            )
        target = self.models.default
        if self.models.routing and route in ROUTED_SUFFIXES:
            target = self.models.route(model_of(body))
        request[UPSTREAM_KEY] = target
        url = URL(target.base + suffix, encoded=True)
        headers = filtered(request.headers, REQUEST_DROP)
        if self.quota_project:
            headers["x-goog-user-project"] = self.quota_project
        try:
            attempt = await self.tokens.aauthorize()
        except VertexEnvError as err:
            return self._no_token(err)
        unusable = self._unusable(attempt.value)
        if unusable is not None:
            return unusable
        try:
            upstream = await self._send(request.method, url, headers, body, attempt.value)
            if attempt.refused(upstream.status):
                # Decided before prepare(): nothing has reached the client yet, so one retry is invisible.
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    await upstream.read()  # small; reading it returns the connection to the pool
                upstream.release()
                self.stats.upstream_401_retries += 1
                self.events.retried_after_401(request)
                try:
                    await attempt.areplace()
                except VertexEnvError as err:
                    return self._no_token(err, "after a 401")
                unusable = self._unusable(attempt.value)
                if unusable is not None:
                    return unusable
                upstream = await self._send(request.method, url, headers, body, attempt.value)
        except (asyncio.TimeoutError, aiohttp.ClientError) as err:
            self.stats.upstream_errors += 1
            log.warning("upstream %s failed: %s", self.upstream, type(err).__name__)
            status = 504 if isinstance(err, asyncio.TimeoutError) else 502
            return error(
                status,
                f"vertex-env proxy: upstream unreachable ({type(err).__name__})",
                "upstream_error",
                "api_error",
            )
        self.stats.forwarded += 1
        if upstream.status < 400:
            return await self._relay(request, upstream)

        async def refused(
            answer: bytes,
        ) -> None:  # Google's refusal: read it once relayed untouched
            await self.refusals.note(
                request, upstream.status, answer, body, attempt.value, self.events, target.base
            )

        return await self._relay(request, upstream, refused)

    async def _answer_models(self, request: web.Request, route: str) -> web.Response:
        """`GET /models` and `GET /models/{id}` in OpenAI's shape, from the model directory."""
        if request.method not in ("GET", "HEAD"):
            answer = error(405, "vertex-env proxy: /models answers GET only", "method_not_allowed")
            answer.headers["Allow"] = "GET, HEAD"
            return answer
        if route == "/models":
            return web.json_response({"object": "list", "data": await self.models.models()})
        model_id = model_id_from(route)
        found = await self.models.model(model_id) if model_id else None
        if found is None:
            return error(
                404,
                f"vertex-env proxy: no model {model_id!r} in this profile's models, Google's catalog "
                "or the location's endpoints",
                "model_not_found",
            )
        return web.json_response(found)

    async def _get_json(self, url: str, google_host: str) -> dict[str, Any]:
        """GET a JSON resource of Google's with the proxy's token, quota project and way out (the model
        directory's lists); raises GoogleListError with Google's message when it says no."""
        assert self._session is not None, "start() first"
        token = (await self.tokens.aget()).value
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        headers.update(original_host_headers(url, google_host))
        if self.quota_project:
            headers["x-goog-user-project"] = self.quota_project
        timeout = aiohttp.ClientTimeout(total=self.models.timeout)
        async with self._session.get(
            URL(url, encoded=True),
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
            proxy=self._via[0],
            proxy_headers=self._via[1],
        ) as answer:
            body = await answer.read()
            if answer.status != 200:
                raise google_message(answer.status, body)
        data = json.loads(body)
        if not isinstance(data, dict):
            raise google_message(answer.status, b"")
        return data

    def _count_wrong_key(self, request: web.Request, refusal: web.Response) -> web.Response:
        """Count a wrong or missing key against the client's address; once it is blocked, answer 429 and
        close the connection (vertex_env.proxy.throttle)."""
        assert self.throttle is not None
        reason = "wrong_key" if "Authorization" in request.headers else "no_key"
        seconds = self.throttle.failed(request.remote, reason)
        if not seconds:
            return refusal
        throttled = error(
            429,
            "vertex-env proxy: too many wrong or missing API keys from your address; "
            f"retry in {math.ceil(seconds)} s with the right key",
            "too_many_wrong_keys",
        )
        throttled.headers["Retry-After"] = str(math.ceil(seconds))
        throttled.force_close()
        return throttled

    def _no_token(self, err: VertexEnvError, when: str = "") -> web.Response:
        self.stats.upstream_errors += 1
        log.warning("no Google token%s: %s", f" {when}" if when else "", err)
        return error(502, f"vertex-env proxy: no Google token: {err}", "token_error", "api_error")

    def _unusable(self, token: str) -> web.Response | None:
        """A token no HTTP header can carry (CR, LF, NUL: a misbehaving endpoint) is never sent: a 502 with one
        log line, and it is dropped so that the next request fetches another."""
        if _HEADER_SAFE.fullmatch(token):
            return None
        self.tokens.invalidate(token)
        self.stats.upstream_errors += 1
        self.lines.warn("bad-token", "the token endpoint returned a token no HTTP header can carry")
        return error(
            502,
            "vertex-env proxy: the token endpoint returned an unusable token",
            "token_error",
            "api_error",
        )

    async def _send(
        self, method: str, url: URL, headers: CIMultiDict[str], body: bytes, token: str
    ) -> aiohttp.ClientResponse:
        assert self._session is not None, "start() first"
        headers["Authorization"] = (
            f"Bearer {token}"  # ours to change: aiohttp copies it into its request
        )
        sent = time.perf_counter()
        answer = await self._session.request(
            method,
            url,
            headers=headers,
            data=body or None,
            allow_redirects=False,
            proxy=self._via[0],
            proxy_headers=self._via[1],
        )
        self.events.upstream_answered(time.perf_counter() - sent, answer.status)
        return answer

    async def _relay(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        refused: Callable[[bytes], Coroutine[Any, Any, None]] | None = None,
    ) -> web.StreamResponse:
        """Status, headers and body exactly as they come, each chunk written as soon as it arrives; `refused`
        reads the first MAX_KEPT bytes of an error answer (a streamed one once it has reached the client)."""
        try:
            length = upstream.content_length
            if (
                length is not None
                and length <= _WHOLE_BODY_LIMIT
                and request.method != "HEAD"
                and upstream.content_type != "text/event-stream"
            ):
                # A small answer of known length (a JSON completion): headers and body in one write,
                # one syscall fewer than a stream. Event streams never come this way.
                whole = await upstream.read()
                answer = web.Response(
                    status=upstream.status,
                    reason=upstream.reason,
                    headers=filtered(upstream.headers, RESPONSE_DROP),
                    body=whole,
                )
                if refused is not None:
                    await refused(whole[:MAX_KEPT])
                return answer
            response = web.StreamResponse(
                status=upstream.status,
                reason=upstream.reason,
                headers=filtered(upstream.headers, RESPONSE_DROP),
            )
            await response.prepare(request)
            kept = bytearray() if refused is not None else None
            try:
                first = True
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                    if kept is not None and len(kept) < MAX_KEPT:
                        kept += chunk[: MAX_KEPT - len(kept)]
                    if first:
                        first = False
                        self.events.first_byte(request)
            except (aiohttp.ClientError, asyncio.TimeoutError) as err:
                # Mid-body failure: the status is out, so cut the connection rather than end it cleanly.
                self.stats.upstream_errors += 1
                log.warning("upstream failed mid-response: %s", type(err).__name__)
                if request.transport is not None:
                    request.transport.abort()
                return response
            except ConnectionResetError:
                return response  # the client went away; releasing the upstream answer closes it too
            await response.write_eof()
            if refused is not None and kept is not None:
                await refused(bytes(kept))
            return response
        finally:
            upstream.release()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (the optional extra `vertex-env[speed]`), else asyncio's: the
    proxy spends much of its CPU in the loop and its transports, which uvloop implements in C."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on `new_event_loop()`'s loop (`vertex-env serve`)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    result: T = uvloop.run(main)
    return result


def _environment_proxy(upstream: str) -> tuple[URL | None, dict[str, str] | None]:
    """The forward proxy HTTP(S)_PROXY/NO_PROXY name for `upstream` and its headers (its login from the URL or
    ~/.netrc, as aiohttp's trust_env would find it), or none."""
    from aiohttp.helpers import get_env_proxy_for_url

    try:
        via, login = get_env_proxy_for_url(URL(upstream))
    except LookupError:
        return None, None
    return via, None if login is None else {"Proxy-Authorization": login.encode()}


class BackgroundProxy:
    """A LoopbackProxy on its own thread and event loop: `with BackgroundProxy.for_environment(env) as p:`.

    `start()` returns once the proxy listens (or raises its error: no credentials, port taken, …).
    """

    def __init__(self, proxy: LoopbackProxy) -> None:
        self.proxy = proxy
        self._thread: LoopThread | None = None

    @classmethod
    def for_environment(
        cls, env: Environment, *, key: str | None = None, host: str = DEFAULT_HOST, port: int = 0
    ) -> BackgroundProxy:
        return cls(LoopbackProxy.for_environment(env, key=key, host=host, port=port))

    @property
    def key(self) -> str:
        return self.proxy.key

    @property
    def base_url(self) -> str:
        return self.proxy.base_url

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def stats(self) -> ProxyStats:
        return self.proxy.stats

    def variables(self) -> dict[str, str]:
        return self.proxy.variables()

    def listening_fds(self) -> list[int]:
        return self.proxy.listening_fds()

    def start(self) -> BackgroundProxy:
        if self._thread is None:
            thread = LoopThread("vertex-env-proxy", new_event_loop)
            thread.start(self.proxy.start, self.proxy.close)
            self._thread = thread
        return self

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()

    def __enter__(self) -> BackgroundProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.proxy.base_url if self._thread is not None else "stopped"
        return f"BackgroundProxy({state})"


def describe(stats: ProxyStats) -> str:
    """One line of counters for a person (stderr)."""
    data: dict[str, Any] = {
        "requests": stats.requests,
        "forwarded": stats.forwarded,
        "refused": stats.refused,
        "retries_after_401": stats.upstream_401_retries,
        "token_fetches": stats.token_fetches,
        "upstream_errors": stats.upstream_errors,
    }
    return json.dumps(data, sort_keys=True)

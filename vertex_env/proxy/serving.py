"""What makes `vertex-env serve` a sidecar: health probes, optional metrics, structured logs and a graceful drain.

- `GET /healthz`: 200 while the process serves. `GET /readyz`: 200 when a token with more than the margin left is
  held or can be minted now; 503 with a one-line reason otherwise, and at once when draining. Neither needs the
  proxy key; neither reveals a token, a principal or the upstream URL.
- `GET /metrics`: the Prometheus text format when the `vertex-env[metrics]` extra is installed (vertex_env.proxy.metrics),
  404 naming the extra otherwise. No key needed either: it holds counts, never a secret.
- These three answer on the proxy's loopback port and, with `ops_listen`, on a port of their own that may bind
  any address (a kubelet or Prometheus reaches a pod by its IP, never by its loopback). That port serves nothing else.
- A JSON log line per request (`--log-format json`): time, level, event, status, duration, bytes, route, retry.
- SIGTERM: /readyz turns 503, the listening socket closes, in-flight requests and streams get `drain_timeout`
  seconds to finish, then the process exits 0. A second signal stops at once.

The proxy (vertex_env.proxy.server) knows nothing of this: it calls the observer hooks of vertex_env.proxy.events and the
`app_hooks` this module gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from aiohttp import web

from vertex_env import errors
from vertex_env.errors import ConfigError, VertexEnvError
from vertex_env.proxy.events import ProxyEvents, refusal_reason
from vertex_env.proxy.gate import wrong_host
from vertex_env.proxy.guard import RateLimitedLog
from vertex_env.proxy.models import UPSTREAM_KEY
from vertex_env.system import diagnostics
from vertex_env.system.loopback import listen_error

if TYPE_CHECKING:
    from vertex_env.core.source import Token, TokenSource
    from vertex_env.proxy.metrics import ProxyMetrics
    from vertex_env.proxy.server import LoopbackProxy

__all__ = [
    "DEFAULT_DRAIN_TIMEOUT",
    "LOG_FORMATS",
    "ObservedTokenSource",
    "Sidecar",
    "configure_logging",
    "parse_ops_listen",
]

log = logging.getLogger(__name__)

LOG_FORMATS = ("text", "json")
#: Inside Kubernetes' default 30 s termination grace, with room for the process to exit.
DEFAULT_DRAIN_TIMEOUT = 25.0
#: Longest a /readyz waits for a token to be minted before it answers 503.
READY_TIMEOUT = 5.0
#: How long a failed mint answers /readyz without another: probes need no key, so a stranger's probe loop
#: must not become a loop of token requests with the user's credential.
READY_FAILURE_MEMORY = 5.0
OPS_PATHS = ("/healthz", "/readyz", "/metrics")
_OPS_ROUTE = "vertex_env.ops"
_STARTED = "vertex_env.started"
_RETRIED = "vertex_env.retried"
_REFUSED = "vertex_env.refused"
_UPSTREAM_REASON = "vertex_env.upstream_reason"
# Routes named in logs; anything else under the base is "other", so a log line never carries a client's path.
_KNOWN_ROUTES = ("/chat/completions", "/completions", "/embeddings", "/models")
# One line for a probe: what kind of failure, never the principal, a file path or a URL from the message.
_NOT_READY: tuple[tuple[type[VertexEnvError], str], ...] = (
    (errors.NoCredentialsError, "no Google credentials found"),
    (errors.CredentialFileError, "the credential file cannot be used"),
    (errors.ReauthRequiredError, "Google asks to reauthenticate"),
    (errors.InvalidGrantError, "the credential was revoked or expired (invalid_grant)"),
    (errors.TransientError, "the token endpoint is unreachable or failing"),
    (errors.AuthError, "Google refused the credential"),
)


class ObservedTokenSource:
    """A TokenSource that tells the sidecar each time the proxy gets a new token, or fails to get one.

    The proxy also re-reads the shared cache when another process rewrote it; a read that returns the token
    already held is not a refresh. Calls run on the executor threads the proxy uses for token I/O; the
    callbacks only count and log.
    """

    def __init__(self, source: TokenSource) -> None:
        self._source = source
        self.expires_at: float | None = None
        # The value last seen, only to tell a new token from a re-read.
        self._last: str | None = None
        self.on_token: Callable[[Token], None] = lambda token: None
        self.on_failure: Callable[[VertexEnvError], None] = lambda err: None

    def _observe(self, fetch: Callable[[], Token]) -> Token:
        try:
            token = fetch()
        except VertexEnvError as err:
            self.on_failure(err)
            raise
        if token.value != self._last:
            self._last = token.value
            self.expires_at = token.expires_at
            self.on_token(token)
        return token

    def get(self, min_ttl: float | None = None) -> Token:
        return self._observe(lambda: self._source.get(min_ttl))

    def mint(self) -> Token:
        return self._observe(self._source.mint)

    def expires_in(self) -> float | None:
        return None if self.expires_at is None else self.expires_at - time.time()

    def __getattr__(self, name: str) -> Any:  # invalidate, cached, profile, … unchanged
        return getattr(self._source, name)

    def as_token_source(self) -> TokenSource:
        return cast("TokenSource", self)


def parse_ops_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all IPv4 interfaces) → (host, port)."""
    parts = urlsplit("//" + value.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or (parts.hostname is None and not value.strip().startswith(":")):
        raise ConfigError(
            f"invalid --ops-listen {value!r}: expected HOST:PORT, e.g. 0.0.0.0:9090 or 127.0.0.1:9090"
        )
    return parts.hostname or "0.0.0.0", port


def _not_ready_reason(err: VertexEnvError) -> str:
    for kind, reason in _NOT_READY:
        if isinstance(err, kind):
            return reason
    return "no Google token can be obtained"


def _route(path: str, base_path: str) -> str:
    if not path.startswith(base_path + "/"):
        return "outside_base"
    suffix = path[len(base_path) :]
    for known in _KNOWN_ROUTES:
        if suffix == known or suffix.startswith(known + "/"):
            return known
    return "other"


class Sidecar(ProxyEvents):
    """Health, metrics, request logs and drain state for one LoopbackProxy; `attach()` wires it in."""

    def __init__(
        self,
        proxy: LoopbackProxy,
        tokens: ObservedTokenSource,
        *,
        metrics: ProxyMetrics | None = None,
        log_requests: bool = False,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        ops_listen: tuple[str, int] | None = None,
    ) -> None:
        self.proxy = proxy
        self.tokens = tokens
        self.metrics = metrics
        self.log_requests = log_requests
        self.drain_timeout = drain_timeout
        self.ops_listen = ops_listen
        self.draining = False
        self.in_flight = 0
        self._ops_runner: web.AppRunner | None = None
        self.ops_port: int | None = None
        # The last failed mint's reason, answered until the monotonic time beside it (READY_FAILURE_MEMORY).
        self._not_ready: tuple[str, float] | None = None
        # Refused requests are a stranger's doing: their JSON lines are rate-limited per kind, as text's are.
        self._refusal_lines = RateLimitedLog(log)
        tokens.on_token = self._token_refreshed
        tokens.on_failure = self._token_failed

    def attach(self) -> Sidecar:
        self.proxy.events = self
        self.proxy.app_hooks.append(self._install)
        self.proxy.shutdown_timeout = self.drain_timeout
        return self

    # -- observer hooks (see vertex_env.proxy.events) ------------------------------------------------------

    def refused(self, request: web.BaseRequest, status: int) -> None:
        reason = refusal_reason(status, "Authorization" in request.headers)
        request[_REFUSED] = reason
        if self.metrics is not None:
            self.metrics.refused(reason)

    def connection_cut(self) -> None:
        if self.metrics is not None:
            self.metrics.connections_cut.inc()

    def upstream_answered(self, seconds: float, status: int) -> None:
        if self.metrics is not None:
            self.metrics.upstream_latency.observe(seconds)

    def retried_after_401(self, request: web.BaseRequest) -> None:
        request[_RETRIED] = True
        if self.metrics is not None:
            self.metrics.retries.inc()

    def upstream_refused(self, request: web.BaseRequest, reason: str) -> None:
        request[_UPSTREAM_REASON] = reason

    def first_byte(self, request: web.BaseRequest) -> None:
        started = request.get(_STARTED)
        if self.metrics is not None and started is not None:
            self.metrics.first_byte.observe(time.perf_counter() - started)

    def _token_refreshed(self, token: Token) -> None:
        if self.metrics is not None:
            self.metrics.token_refreshes.inc()
        log.info(
            "held token replaced",
            extra={"event": "token_refreshed", "fields": {"expires_in": round(token.remaining())}},
        )

    def _token_failed(self, err: VertexEnvError) -> None:
        if self.metrics is not None:
            self.metrics.token_failures.inc()
        log.warning(
            "no Google token: %s",
            _not_ready_reason(err),
            extra={"event": "token_refresh_failed", "fields": {"error": type(err).__name__}},
        )

    # -- routes ----------------------------------------------------------------------------------------

    def _install(self, app: web.Application) -> None:
        self._add_ops_routes(app, host_rule=True)
        if self.metrics is not None or self.log_requests:
            app.middlewares.append(self._middleware())

    def _add_ops_routes(self, app: web.Application, *, host_rule: bool) -> None:
        """The probes; on the proxy's port (`host_rule`) they obey its Host rule, so a DNS-rebinding page can
        neither read metrics nor drive /readyz. The --ops-listen port's address is explicit: a kubelet or
        Prometheus sends the pod IP as Host there."""
        handlers: tuple[tuple[str, Callable[[web.Request], Awaitable[web.Response]]], ...] = (
            ("/healthz", self._healthz),
            ("/readyz", self._readyz),
            ("/metrics", self._metrics),
        )
        for path, handler in handlers:
            if host_rule:
                handler = self._host_checked(handler)
            app.router.add_get(path, handler, name=f"{_OPS_ROUTE}.{path[1:]}")

    def _host_checked(
        self, handler: Callable[[web.Request], Awaitable[web.Response]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        gate = self.proxy.gate

        async def checked(request: web.Request) -> web.Response:
            if gate.wrong_host(request):
                return wrong_host()
            return await handler(request)

        return checked

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.draining:
            return web.Response(status=503, text="not ready: draining\n")
        remembered = self._not_ready
        if remembered is not None and time.monotonic() < remembered[1]:
            return web.Response(status=503, text=f"not ready: {remembered[0]}\n")
        try:
            # Concurrent probes share one fetch (HeldToken.aget): never more than one mint at a time.
            await asyncio.wait_for(self.proxy.tokens.aget(), READY_TIMEOUT)
        except asyncio.TimeoutError:
            reason = f"no Google token within {READY_TIMEOUT:g} s"
        except VertexEnvError as err:
            reason = _not_ready_reason(err)
            self._not_ready = (reason, time.monotonic() + READY_FAILURE_MEMORY)
        else:
            self._not_ready = None
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {reason}\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.metrics is None:
            from vertex_env.proxy.metrics import EXTRA

            return web.Response(status=404, text=f"metrics need the extra: pip install '{EXTRA}'\n")
        body, content_type = self.metrics.render()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    def _middleware(self) -> Any:
        metrics, log_requests, base_path = self.metrics, self.log_requests, self.proxy.base_path

        @web.middleware
        async def account(
            request: web.Request, handler: Callable[[web.Request], Any]
        ) -> web.StreamResponse:
            name = request.match_info.route.name
            if name is not None and name.startswith(
                _OPS_ROUTE
            ):  # probes and scrapes: not proxy traffic
                response: web.StreamResponse = await handler(request)
                return response
            started = request[_STARTED] = time.perf_counter()
            self.in_flight += 1
            if metrics is not None:
                metrics.in_flight.inc()
            status, streaming, size = 499, False, 0  # 499: cancelled (client gone, drain over)
            try:
                response = await handler(request)
                status = response.status
                streaming = response.content_type == "text/event-stream"
                if response.prepared:
                    size = response.body_length
                elif isinstance(response, web.Response) and isinstance(response.body, bytes):
                    size = len(response.body)
                return response
            finally:
                self.in_flight -= 1
                if metrics is not None:
                    metrics.in_flight.dec()
                    metrics.answered(status, streaming)
                refused = request.get(_REFUSED)
                skipped = 0 if refused is None else self._refusal_lines.admit(refused)
                if log_requests and skipped is not None:
                    fields: dict[str, Any] = {
                        "status": status,
                        "duration": round(time.perf_counter() - started, 6),
                        "bytes": size,
                        "method": request.method,
                        "route": _route(request.path, base_path),
                        "streaming": streaming,
                        "retry": bool(request.get(_RETRIED, False)),
                    }
                    if refused is not None:
                        fields["refused"] = refused
                        fields["client"] = request.remote  # an address, never a header
                        if skipped:
                            fields["suppressed"] = skipped  # refusals of this kind not logged since
                    upstream = request.get(UPSTREAM_KEY)
                    if upstream is not None:  # where it went: never the prompt
                        fields["location"] = upstream.location
                        fields["endpoint"] = upstream.endpoint
                    if _UPSTREAM_REASON in request:
                        fields["upstream_reason"] = request[_UPSTREAM_REASON]
                    log.info("request", extra={"event": "request", "fields": fields})

        return account

    # -- the ops port, the drain -------------------------------------------------------------------------

    async def start_ops(self) -> None:
        if self.ops_listen is None:
            return
        host, port = self.ops_listen
        app = web.Application()
        self._add_ops_routes(app, host_rule=False)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as err:
            await runner.cleanup()
            raise listen_error(host, port, err, "--ops-listen") from None
        self._ops_runner = runner
        self.ops_port = int(runner.addresses[0][1])

    async def close_ops(self) -> None:
        runner, self._ops_runner = self._ops_runner, None
        if runner is not None:
            await runner.cleanup()

    def begin_drain(self) -> None:
        """From now /readyz answers 503; the caller then closes the proxy, which waits for in-flight work."""
        self.draining = True
        if self.metrics is not None:
            self.metrics.draining.set(1)
        fields: dict[str, Any] = {"drain_timeout": self.drain_timeout}
        if self.metrics is not None or self.log_requests:
            fields["in_flight"] = self.in_flight
        log.info("draining", extra={"event": "draining", "fields": fields})

    async def run(self, announce: Callable[[], None]) -> None:
        """Serve until SIGINT or SIGTERM, then drain: the body of `vertex-env serve`."""
        stop, force = asyncio.Event(), asyncio.Event()

        def on_signal() -> None:
            (force if stop.is_set() else stop).set()

        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, on_signal)
                installed.append(signum)
        try:
            await self.proxy.start()
            # The model list in the background: /models answers at once, and a self-deployed endpoint's
            # display name routes from the first request on (unless models_only).
            self.proxy.models.prime()
            try:
                await self.start_ops()
                announce()
                await stop.wait()
                self.begin_drain()
            finally:
                await self._close(force)
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

    async def _close(self, force: asyncio.Event) -> None:
        closing = asyncio.ensure_future(self.proxy.close())
        forced = asyncio.ensure_future(force.wait())
        try:
            await asyncio.wait({closing, forced}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            forced.cancel()
            if not closing.done():
                log.warning("second signal: stopping without waiting", extra={"event": "forced"})
                self.proxy.abort_in_flight()
                closing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closing
            await self.close_ops()


class _JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, event, then the event's fields (never a token, key or body)."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        data: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "message"),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        if data["event"] != "request":
            data["message"] = record.getMessage()
        return json.dumps(data, separators=(",", ":"))


def configure_logging(log_format: str) -> None:
    """`serve`'s log on the CLI's one stderr handler (vertex_env.system.diagnostics): JSON lines, every record
    of vertex-env at INFO and up (requests included; --debug's `google_request` records too, so that every
    stderr line stays JSON), or text: `vertex-env serve: warning: …` for the library's warnings, as before."""
    handler = diagnostics.handler()
    if handler is None:  # serve run without the CLI: the caller's logging decides
        return
    if log_format == "json":
        handler.setFormatter(_JsonFormatter())
        logging.getLogger(diagnostics.ROOT).setLevel(logging.INFO)
    else:
        handler.setFormatter(diagnostics.LineFormatter("vertex-env serve"))

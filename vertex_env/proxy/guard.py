"""The proxy's defences against local users without the key: a connection cap, a deadline for the first
authenticated request, and logs that stay small and secret-free however much garbage arrives.

- At most `max_connections` client connections. When full, the oldest connection that has not yet sent an
  authenticated request is dropped to make room (half-sent requests cannot starve clients with the key); when
  every connection is authenticated, the new one gets a bare 503 and is closed.
- A connection that has not sent a request with the key within `header_timeout` seconds is closed.
- A connection from an address blocked for repeated wrong keys (vertex_env.proxy.throttle) is closed as soon as
  it is accepted, before a byte is read.
- aiohttp's own log lines (a traceback per malformed request, which may quote a header next to Authorization)
  and the event loop's accept errors become one line per kind, at most one per kind every `LOG_INTERVAL`
  seconds, naming only the exception class: never a header, never a traceback.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web

if TYPE_CHECKING:
    import ssl

__all__ = ["ConnectionGuard", "GuardedSite", "RateLimitedLog", "quiet_server_logger"]

log = logging.getLogger(__name__)

#: Seconds between two lines of the same kind; the next one says how many were left out.
LOG_INTERVAL = 10.0
_REFUSE_FULL = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class RateLimitedLog:
    """One warning line per kind at most every `interval` seconds, with the count of those left out."""

    def __init__(self, logger: logging.Logger = log, interval: float = LOG_INTERVAL) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def admit(self, kind: str) -> int | None:
        """Whether a line of `kind` may go out now: None when not (it is counted), else how many were left
        out since the last one. For a caller that writes its own record (serve's JSON request lines)."""
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._skipped.pop(kind, 0)

    def warn(self, kind: str, text: str) -> None:
        skipped = self.admit(kind)
        if skipped is None:
            return
        more = f" ({skipped} more since the last such line)" if skipped else ""
        self.logger.warning("%s%s", text, more)


class _QuietServerLogger(logging.Logger):
    """Stands in for aiohttp's server logger: a record becomes one rate-limited line naming the exception's
    class (a malformed request's message may quote the raw header block, key included); no traceback."""

    def __init__(self, lines: RateLimitedLog) -> None:
        super().__init__("vertex_env.proxy.server.server")
        self.lines = lines

    def _log(
        self, level: int, msg: object, args: Any, exc_info: Any = None, *rest: Any, **kw: Any
    ) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else None
        if exc is None and isinstance(exc_info, tuple) and len(exc_info) == 3:
            exc = exc_info[1]
        if exc is not None:
            name = type(exc).__name__
            self.lines.warn(f"bad:{name}", f"refused a malformed request ({name})")
        elif level >= logging.WARNING:
            self.lines.warn(f"server:{msg}", f"server: {msg}")


def quiet_server_logger(lines: RateLimitedLog) -> logging.Logger:
    return _QuietServerLogger(lines)


class _Connection(asyncio.Protocol):
    """One client connection: aiohttp's protocol inside, with the guard's bookkeeping around it."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.authenticated = False
        self.admitted = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike: no isinstance check here.
        self.transport = cast(asyncio.Transport, transport)
        if self.guard.cut(transport):
            self.transport.abort()
            return
        if not self.guard.admit(self):
            self.transport.write(_REFUSE_FULL)
            self.transport.close()
            return
        self.admitted = True
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self.guard.header_timeout, self._expired)
        self.inner.connection_made(transport)

    def _expired(self) -> None:
        self._deadline = None
        if not self.authenticated and self.transport is not None:
            self.guard.lines.warn(
                "header-timeout",
                f"closed a connection with no authenticated request after {self.guard.header_timeout:g}s",
            )
            self.transport.abort()

    def mark_authenticated(self) -> None:
        if not self.authenticated:
            self.authenticated = True
            self.guard.promoted(self)
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

    def evict(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.guard.release(self)
        if self.admitted:
            self.inner.connection_lost(exc)


class ConnectionGuard:
    """The cap and the deadline for one proxy; `protocol_factory` wraps aiohttp's."""

    def __init__(
        self,
        max_connections: int,
        header_timeout: float,
        lines: RateLimitedLog,
        *,
        blocked: Callable[[str], float] | None = None,
        on_cut: Callable[[], None] = lambda: None,
    ) -> None:
        self.max_connections = max(1, max_connections)
        self.header_timeout = header_timeout
        self.lines = lines
        #: Seconds an address is still blocked for repeated wrong keys (vertex_env.proxy.throttle), if any.
        self.blocked = blocked
        self.on_cut = on_cut
        self._pending: OrderedDict[_Connection, None] = OrderedDict()  # oldest first
        self._trusted: set[_Connection] = set()
        self._by_transport: dict[asyncio.BaseTransport, _Connection] = {}

    @property
    def open(self) -> int:
        return len(self._pending) + len(self._trusted)

    def protocol_factory(
        self, inner: Callable[[], asyncio.Protocol]
    ) -> Callable[[], asyncio.Protocol]:
        return lambda: _Connection(self, inner())

    def cut(self, transport: asyncio.BaseTransport) -> bool:
        """Whether a new connection comes from an address blocked for repeated wrong keys (it is then closed
        unread)."""
        if self.blocked is None:
            return False
        peer = transport.get_extra_info("peername")
        if not peer or not self.blocked(str(peer[0])):
            return False
        self.on_cut()
        return True

    def admit(self, connection: _Connection) -> bool:
        if self.open >= self.max_connections:
            if not self._pending:
                self.lines.warn(
                    "full",
                    f"refused a connection: {self.max_connections} authenticated connections are open",
                )
                return False
            oldest, _ = self._pending.popitem(last=False)
            self.lines.warn(
                "evicted",
                f"{self.max_connections} connections open: dropped the oldest without an authenticated request",
            )
            oldest.evict()
        self._pending[connection] = None
        assert connection.transport is not None
        self._by_transport[connection.transport] = connection
        return True

    def authenticated(self, transport: asyncio.BaseTransport | None) -> None:
        """The request on `transport` carried the key: its connection may stay as long as it likes."""
        connection = self._by_transport.get(transport) if transport is not None else None
        if connection is not None:
            connection.mark_authenticated()

    def promoted(self, connection: _Connection) -> None:
        if self._pending.pop(connection, False) is None:
            self._trusted.add(connection)

    def release(self, connection: _Connection) -> None:
        """Forget a closed connection."""
        self._trusted.discard(connection)
        self._pending.pop(connection, None)
        if connection.transport is not None:
            self._by_transport.pop(connection.transport, None)

    def loop_exception_handler(self, previous: Callable[..., Any] | None) -> Callable[..., None]:
        """For the event loop: running out of file handles is one rate-limited line, not a traceback a try."""

        def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            exc = context.get("exception")
            if isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS:
                self.lines.warn(
                    "resources", f"out of resources: {exc.strerror or type(exc).__name__}"
                )
                return
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        return handle


class GuardedSite(web.BaseSite):
    """aiohttp's TCPSite, with every connection passing through a ConnectionGuard (and TLS, given a context)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._guard = guard

    def listening_fds(self) -> list[int]:
        """The descriptors of the listening sockets (none before start())."""
        # asyncio's Server and uvloop's both have `sockets`; the abstract type does not declare it.
        sockets = getattr(self._server, "sockets", None) or ()
        return [int(sock.fileno()) for sock in sockets]

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        tls: dict[str, Any] = {}
        if self._ssl_context is not None:
            # A handshake that never ends holds a socket before the guard sees the connection: bound it as
            # the guard bounds a request without the key.
            tls = {"ssl": self._ssl_context, "ssl_handshake_timeout": self._guard.header_timeout}
        self._server = await loop.create_server(
            self._guard.protocol_factory(server),
            self._host,
            self._port,
            backlog=self._backlog,
            **tls,
        )

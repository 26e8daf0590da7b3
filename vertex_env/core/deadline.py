"""A deadline for a whole exchange with Google (`--timeout`): bytes arriving slowly cannot stretch it.

requests' timeout bounds each socket operation, so an answer dripping one byte every half second never trips it
(a 5 s `--timeout` took 75 s). Within `deadline(seconds)`, every socket the exchange's connections send on is
watched, and when the time is up a timer thread shuts them down: the blocked read ends at once with an error,
and the caller (vertex_env.core.transport) reports its timeout. `DeadlineAdapter` is the requests adapter
whose urllib3 connections report their sockets; outside a deadline they behave as urllib3's own.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["DeadlineAdapter", "deadline"]

_local = threading.local()


def _watch(sock: socket.socket | None) -> None:
    watched: list[socket.socket] | None = getattr(_local, "watched", None)
    if watched is not None and sock is not None:
        watched.append(sock)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[threading.Event]:
    """Shut down, `seconds` from now, every socket this thread's exchange sends on meanwhile; the Event yielded
    is set when that happened (the caller then knows the error it sees is the deadline's)."""
    watched: list[socket.socket] = []
    previous = getattr(_local, "watched", None)
    _local.watched = watched
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        for sock in list(watched):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(seconds, 0.0), expire)
    timer.daemon = True
    timer.start()
    try:
        yield expired
    finally:
        timer.cancel()
        _local.watched = previous


class _WatchedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)  # a kept-alive connection does not connect again
        super().request(*args, **kwargs)
        _watch(self.sock)


class _WatchedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)
        super().request(*args, **kwargs)
        _watch(self.sock)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter with connections a `deadline` can cut, directly or through an HTTP(S) proxy."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools make their own connections
            manager.pool_classes_by_scheme = _POOLS
        return manager

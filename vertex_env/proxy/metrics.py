"""Prometheus metrics of `vertex-env serve`, with the official client library (the optional extra `vertex-env[metrics]`).

Only `serve` imports this module, and only `load()` imports prometheus_client: `export`, `token` and the rest
of the CLI never pay for it. Every metric lives in a registry of its own (not the process-wide default one),
so several proxies in one process do not collide. No label carries a key, a token, a prompt or a path: the
labels are a status class, a yes/no, and a refusal reason from a fixed list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from vertex_env.proxy.events import REFUSAL_REASONS

if TYPE_CHECKING:
    from prometheus_client import Counter

__all__ = ["EXTRA", "ProxyMetrics", "load"]

#: What to install for /metrics (named in `serve --help` and in the 404 without it).
EXTRA = "vertex-env[metrics]"

STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
# Vertex answers a short completion in well under a second and a long one in tens of seconds.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class ProxyMetrics:
    """The serve process's metrics; `render()` is the body of GET /metrics."""

    def __init__(self, token_expires_in: Callable[[], float | None]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        requests = Counter(
            "vertex_env_proxy_requests",
            "Requests the proxy answered (refusals included), by status class and whether the answer was an event stream.",
            ["status_class", "streaming"],
            registry=r,
        )
        # Children resolved once: a label lookup per request would cost more than the increment.
        self._requests: dict[tuple[str, bool], Counter] = {
            (cls, streaming): requests.labels(cls, "true" if streaming else "false")
            for cls in STATUS_CLASSES
            for streaming in (False, True)
        }
        self.upstream_latency = Histogram(
            "vertex_env_proxy_upstream_latency_seconds",
            "Time from sending a request to Vertex until its status and headers arrive.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.first_byte = Histogram(
            "vertex_env_proxy_stream_first_byte_seconds",
            "For event streams: time from the client's request until the first chunk was written back.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "vertex_env_proxy_upstream_401_retries",
            "Requests sent again with a new token after Vertex refused the held one (401).",
            registry=r,
        )
        refused = Counter(
            "vertex_env_proxy_refused",
            "Requests refused before reaching Vertex, by reason.",
            ["reason"],
            registry=r,
        )
        self._refused = {reason: refused.labels(reason) for reason in REFUSAL_REASONS}
        self.connections_cut = Counter(
            "vertex_env_proxy_blocked_connections",
            "Connections closed unread because their address sent too many wrong or missing keys.",
            registry=r,
        )
        self.token_refreshes = Counter(
            "vertex_env_token_refreshes",
            "Times the proxy replaced its held Google token (from the shared cache or minted).",
            registry=r,
        )
        self.token_failures = Counter(
            "vertex_env_token_refresh_failures",
            "Times the proxy needed a Google token and could not get one.",
            registry=r,
        )
        expiry = Gauge(
            "vertex_env_token_expires_in_seconds",
            "Seconds until the held Google token expires (negative: expired; NaN before the first token).",
            registry=r,
        )
        expiry.set_function(lambda: _or_nan(token_expires_in()))
        self.in_flight = Gauge(
            "vertex_env_proxy_in_flight_requests",
            "Requests (streams included) being answered right now.",
            registry=r,
        )
        self.draining = Gauge(
            "vertex_env_proxy_draining",
            "1 once SIGTERM was received: no new connections, in-flight requests finishing.",
            registry=r,
        )

    def answered(self, status: int, streaming: bool) -> None:
        cls = STATUS_CLASSES[min(max(status // 100, 1), 5) - 1]
        self._requests[cls, streaming].inc()

    def refused(self, reason: str) -> None:
        self._refused[reason].inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


def load(token_expires_in: Callable[[], float | None]) -> ProxyMetrics | None:
    """The metrics, or None when prometheus_client is not installed (then /metrics answers 404)."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return None
    return ProxyMetrics(token_expires_in)

"""What the loopback proxy tells an observer about each request: the hook points `serve` uses for metrics and logs.

The proxy calls these at a handful of places on its request path. The base class does nothing, so a proxy
without an observer (`run --proxy`, the Python API, tests) pays one empty method call at each point. An
observer is given the aiohttp request (to keep per-request state in it, e.g. `request["vertex_env.retried"]`),
a status or a duration — never a key, a token or a body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["REFUSAL_REASONS", "ProxyEvents", "refusal_reason"]

#: Why the proxy refused a request, by the status its gate answered (401 splits on whether a key was sent).
REFUSAL_REASONS = (
    "bad_request",
    "foreign_host",
    "no_key",
    "wrong_key",
    "outside_base",
    "too_large",
    "throttled",
)


def refusal_reason(status: int, sent_authorization: bool) -> str:
    """The reason label for a refusal the proxy's gate answered with `status`."""
    if status == 401:
        return "wrong_key" if sent_authorization else "no_key"
    return {421: "foreign_host", 404: "outside_base", 413: "too_large", 429: "throttled"}.get(
        status, "bad_request"
    )


class ProxyEvents:
    """The no-op observer. Subclasses override what they need; every method must be cheap and never raise."""

    def refused(self, request: web.BaseRequest, status: int) -> None:
        """The gate refused the request (no key, wrong key, foreign Host, outside the base, too large, …)."""

    def upstream_answered(self, seconds: float, status: int) -> None:
        """Vertex answered with `status` (headers received) `seconds` after the request was sent upstream."""

    def retried_after_401(self, request: web.BaseRequest) -> None:
        """Vertex refused the token; the proxy replaces it and sends the request once more."""

    def first_byte(self, request: web.BaseRequest) -> None:
        """The first chunk of a streamed answer has been written to the client."""

    def connection_cut(self) -> None:
        """A connection from an address blocked for repeated wrong keys was closed unread."""

    def upstream_refused(self, request: web.BaseRequest, reason: str) -> None:
        """Vertex refused the request (status >= 400); `reason` is Google's ErrorInfo reason, else its status."""

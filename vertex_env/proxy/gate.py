"""The proxy's gate and header rules: what may pass (key, Host, path) and which header fields go through.

`Gate.refusal(request)` is the one check in front of the forwarding code (as aws-vault's server middleware):
an OpenAI-shaped error response for a request that must not be forwarded, None for one that may go.
`filtered()` drops hop-by-hop fields, those a Connection header names, and what the proxy replaces itself.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

if TYPE_CHECKING:
    from vertex_env.proxy.guard import ConnectionGuard

# RFC 9110 §7.6.1 hop-by-hop fields, plus Proxy-Connection (non-standard, still sent by some clients).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Never forwarded upstream: the local key, the client's idea of our host, and a length recomputed from the body.
REQUEST_DROP = HOP_BY_HOP | {"authorization", "host", "content-length"}
RESPONSE_DROP = HOP_BY_HOP
_REFUSED_METHODS = frozenset({"CONNECT", "TRACE"})


def error(
    status: int, message: str, code: str, kind: str = "invalid_request_error"
) -> web.Response:
    """An OpenAI-shaped error, so SDKs show the message as they would one of OpenAI's."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    headers = {"WWW-Authenticate": 'Bearer realm="vertex-env"'} if status == 401 else None
    return web.json_response(body, status=status, headers=headers)


def wrong_host() -> web.Response:
    """The answer to a request whose Host is not ours (the proxy's and its probes' alike)."""
    return error(421, "vertex-env proxy: wrong Host", "misdirected_request")


def connection_tokens(headers: Mapping[str, str] | CIMultiDictProxy[str]) -> set[str]:
    named: set[str] = set()
    getall = getattr(headers, "getall", None)
    values: Iterable[str] = getall("Connection", []) if getall else [headers.get("Connection", "")]
    for value in values:
        named.update(part.strip().lower() for part in value.split(",") if part.strip())
    return named


def filtered(headers: CIMultiDictProxy[str], drop: frozenset[str]) -> CIMultiDict[str]:
    """`headers` without the `drop` fields and those their Connection header names (built in one go: this
    runs twice per request)."""
    if "Connection" in headers:
        drop = drop | connection_tokens(headers)
    return CIMultiDict([item for item in headers.items() if item[0].lower() not in drop])


def unsafe_suffix(suffix: str) -> bool:
    """Dot segments and encoded separators could walk a normalising server out of the Vertex base."""
    if "%" not in suffix and "/." not in suffix and "\\" not in suffix and "\x00" not in suffix:
        return (
            False  # the common case: nothing to decode, no dot segment (`suffix` starts with "/")
        )
    for segment in suffix.split("/"):
        decoded = unquote(segment)
        if decoded in (".", "..") or "/" in decoded or "\\" in decoded or "\x00" in decoded:
            return True
    return False


def _arrived_on(request: web.BaseRequest, name: str) -> bool:
    """Whether `name` is the local address the request's connection arrived on (an IPv4-mapped address of a
    dual-stack socket counts as its IPv4 address)."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if not sockname:
        return False
    try:
        local = ipaddress.ip_address(str(sockname[0]).split("%", 1)[0])
        sent = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(local, ipaddress.IPv6Address) and local.ipv4_mapped is not None:
        local = local.ipv4_mapped
    return sent == local


def host_name(host: str) -> str:
    """The name in a Host header, without port or IPv6 brackets, lowercased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.split(":", 1)[0]


class Gate:
    """The checks every request passes before it is forwarded: origin-form, a Host of ours (no DNS
    rebinding), the local key (constant time), a path under the Vertex base without dot segments."""

    def __init__(
        self, key: str, bound: str, base_path: str, allow_hosts: Iterable[str] = ()
    ) -> None:
        self._key_bytes = f"Bearer {key}".encode("ascii")
        self.base_path = base_path
        # Listening on 0.0.0.0 or ::, "our address" is the one each connection arrived on, not the wildcard.
        self.wildcard = ipaddress.ip_address(bound).is_unspecified
        ours = set() if self.wildcard else {bound}
        self.allowed_hosts = frozenset({*ours, "localhost", "127.0.0.1", "::1", *allow_hosts})
        self._host_values: frozenset[str] = frozenset()  # the exact Host headers clients send

    def listening(self, port: int) -> None:
        """The port is known: the Host values clients send are then matched without parsing them."""
        self._host_values = frozenset(
            f"[{name}]:{port}" if ":" in name else f"{name}:{port}" for name in self.allowed_hosts
        )

    def wrong_host(self, request: web.BaseRequest) -> bool:
        """DNS rebinding: a web page may resolve its own name to our address, never make it the Host. The
        Host must be loopback, the address listened on (or, on 0.0.0.0 and ::, the one the connection
        arrived on), or a name allowed with --allow-host."""
        host = request.headers.get("Host")
        if host is None or host in self._host_values:
            return False
        name = host_name(host)
        if name in self.allowed_hosts:
            return False
        return not (self.wildcard and _arrived_on(request, name))

    def refusal(
        self, request: web.Request, guard: ConnectionGuard | None = None
    ) -> web.Response | None:
        """Why this request is not forwarded, as the response to give; None when it may go."""
        raw = request.raw_path
        if not raw.startswith("/") or request.method in _REFUSED_METHODS:
            # Absolute-form (`GET http://evil.example/`), authority-form (CONNECT) and TRACE: not a proxy.
            return error(
                400, "vertex-env proxy: only origin-form requests are served", "bad_request"
            )
        if self.wrong_host(request):
            return wrong_host()
        supplied = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(supplied, self._key_bytes):
            return error(
                401,
                "vertex-env proxy: missing or wrong API key; use the OPENAI_API_KEY it printed",
                "invalid_api_key",
            )
        if guard is not None:
            guard.authenticated(request.transport)
        path = raw.split("?", 1)[0]
        base = self.base_path
        suffix = path[len(base) :]
        if not path.startswith(base + "/") or (
            # /models/{id} is answered here, never forwarded: an encoded `/` in an id (google%2F…) is harmless
            unsafe_suffix(suffix) and not suffix.startswith("/models/")
        ):
            return error(404, f"vertex-env proxy serves only {base}/...", "not_found")
        return None

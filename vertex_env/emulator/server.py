"""The offline Google + Vertex emulator: one aiohttp app, its in-memory state, and the thread that runs it.

It serves, on one port, the paths of every Google endpoint vertex-env's credentials touch (the transport
seam rewrites their hosts to this port): OAuth2 `/token`, STS `/v1/token` and `/v1/oauthtoken`, IAM
`generateAccessToken`, the GCE metadata server, and Vertex's OpenAI-compatible chat completions (JSON and
SSE). Tokens are opaque `ya29.emu-` strings with a lifetime; chat answers 401 to unknown or expired ones.
An admin API under `/__emulator/` injects faults, scripts replies and reads counters; records never hold
a secret (refresh tokens, assertions, client secrets, access tokens), so tests can print them freely.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import dataclasses
import datetime
import itertools
import json
import re
import secrets
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from vertex_env.loop_thread import LoopThread

if TYPE_CHECKING:
    from vertex_env.emulator.admin import EmulatorAdmin

TOKEN_PREFIX = "ya29.emu-"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_PROJECT_ID = "emulated-project"
DEFAULT_SERVICE_ACCOUNT = "default@emulated-project.iam.gserviceaccount.com"
ORIGINAL_HOST_HEADER = "X-Vertex-Env-Original-Host"
ADMIN_PREFIX = "/__emulator/"

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"

#: Kinds of traffic; a fault targets one of them or `any`.
KINDS = ("token", "iam", "metadata", "chat", "other")
FAULT_TARGETS = (*KINDS, "any")

# Audiences google-auth puts in a JWT-bearer assertion (it always uses the first, whatever token_uri says).
_GOOGLE_TOKEN_AUDIENCES = frozenset(
    {
        "https://oauth2.googleapis.com/token",
        "https://accounts.google.com/o/oauth2/token",
        "https://www.googleapis.com/oauth2/v4/token",
    }
)
_OAUTH_TOKEN_PATHS = frozenset({"/token", "/o/oauth2/token", "/oauth2/v4/token"})
_STS_EXCHANGE_PATHS = frozenset({"/v1/token"})
_STS_REFRESH_PATHS = frozenset({"/v1/oauthtoken", "/v1/oauth/token"})
_CHAT_PATH = re.compile(
    r"^/(?P<version>v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/endpoints/(?P<endpoint>[^/]+)/chat/completions$"
)
_IAM_PATH = re.compile(
    r"^/v1/projects/-/serviceAccounts/(?P<email>[^/:]+)(?P<rest>:[A-Za-z]+|/allowedLocations)$"
)
_METADATA_SA_PATH = re.compile(
    r"^/computeMetadata/v1/instance/service-accounts/(?P<account>[^/]+)/(?P<leaf>[^/]*)$"
)
_LIFETIME = re.compile(r"^(?P<seconds>\d+(?:\.\d+)?)s$")
# Google's refusal of a JWT-bearer assertion signed for more than an hour.
_MAX_ASSERTION_SECONDS = 3600
_CLOCK_SKEW_SECONDS = 300
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-goog-api-key", "api-key", "x-api-key"}
)
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_OAUTH_ERRORS: dict[str, dict[str, str]] = {
    "invalid_grant": {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    },
    "invalid_rapt": {
        "error": "invalid_grant",
        "error_description": "reauth related error (invalid_rapt)",
        "error_subtype": "invalid_rapt",
    },
}
_CONFIG_KEYS = (
    "expires_in",
    "max_lifetime",
    "project_id",
    "service_account_email",
    "scopes",
    "require_known_keys",
)


class EmulatorError(ValueError):
    """A bad admin request or configuration value (the admin API answers it with 400)."""


def google_error(status: int, message: str, status_name: str | None = None) -> dict[str, Any]:
    """The error body Google's JSON APIs (IAM, Vertex) answer with."""
    return {
        "error": {
            "code": status,
            "message": message,
            "status": status_name or _STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }


def rfc3339(epoch_seconds: float) -> str:
    """UTC time as `2024-01-02T03:04:05Z` — whole seconds, the exact form google-auth's IAM parser accepts."""
    moment = datetime.datetime.fromtimestamp(int(epoch_seconds), tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class IssuedToken:
    """What the emulator remembers about an access token it minted (the value itself is the dict key)."""

    id: int
    grant: str
    principal: str
    scopes: tuple[str, ...]
    issued_at: float
    expires_at: float

    def live(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.expires_at

    def describe(self) -> dict[str, Any]:
        """A record safe to show: everything but the token value."""
        return {
            "id": self.id,
            "grant": self.grant,
            "principal": self.principal,
            "scopes": list(self.scopes),
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "expired": not self.live(),
        }


@dataclasses.dataclass
class Fault:
    """One injected failure, applied to the next `count` requests of its target kind."""

    target: str = "any"
    status: int | None = None
    error: str | None = None
    delay: float | None = None
    non_json: bool = False
    close: bool = False
    body: Any = None
    count: int = 1

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        if not isinstance(data, dict):
            raise EmulatorError("a fault is a JSON object")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)} - {"kind"}
        if unknown:
            raise EmulatorError(f"unknown fault fields: {sorted(unknown)}")
        target = str(data.get("target", data.get("kind", "any")))
        if target not in FAULT_TARGETS:
            raise EmulatorError(
                f"fault target must be one of {list(FAULT_TARGETS)}, not {target!r}"
            )
        fault = cls(
            target=target,
            status=_optional_int(data.get("status"), "status"),
            error=data.get("error"),
            delay=_optional_float(data.get("delay"), "delay"),
            non_json=bool(data.get("non_json", False)),
            close=bool(data.get("close", False)),
            body=data.get("body"),
            count=_optional_int(data.get("count"), "count") or 1,
        )
        if fault.error is not None and fault.error not in _OAUTH_ERRORS:
            raise EmulatorError(f"fault error must be one of {sorted(_OAUTH_ERRORS)}")
        effects = [fault.status is not None, fault.error is not None, fault.non_json, fault.close]
        if sum(effects) > 1:
            raise EmulatorError("a fault has one effect: status, error, non_json or close")
        if sum(effects) == 0 and fault.delay is None:
            raise EmulatorError("a fault needs status, error, delay, non_json or close")
        if fault.status is not None and not 100 <= fault.status <= 599:
            raise EmulatorError("fault status must be an HTTP status")
        return fault

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, False)}

    def matches(self, kind: str) -> bool:
        return self.target in ("any", kind)

    @property
    def name(self) -> str:
        if self.close:
            return "close"
        if self.non_json:
            return "non_json"
        if self.error:
            return self.error
        if self.status is not None:
            return str(self.status)
        return "delay"


@dataclasses.dataclass
class ScriptedReply:
    """A chat answer chosen by a test: text, tool calls, or an error status with its body."""

    text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    status: int | None = None
    body: Any = None
    repeat: bool = False

    @classmethod
    def from_json(cls, data: Any) -> ScriptedReply:
        if not isinstance(data, dict):
            raise EmulatorError("a reply is a JSON object")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise EmulatorError(f"unknown reply fields: {sorted(unknown)}")
        reply = cls(
            text=None if data.get("text") is None else str(data["text"]),
            tool_calls=data.get("tool_calls"),
            status=_optional_int(data.get("status"), "status"),
            body=data.get("body"),
            repeat=bool(data.get("repeat", False)),
        )
        if reply.tool_calls is not None and not (
            isinstance(reply.tool_calls, list)
            and all(isinstance(c, dict) for c in reply.tool_calls)
        ):
            raise EmulatorError("tool_calls is a list of objects")
        if reply.text is None and reply.tool_calls is None and reply.status is None:
            raise EmulatorError("a reply needs text, tool_calls or status")
        return reply

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, False)}


@dataclasses.dataclass
class EmulatorConfig:
    expires_in: int = 3600
    max_lifetime: int = 43200
    project_id: str = DEFAULT_PROJECT_ID
    service_account_email: str = DEFAULT_SERVICE_ACCOUNT
    scopes: tuple[str, ...] = (CLOUD_PLATFORM_SCOPE,)
    #: Refuse JWT-bearer assertions from service accounts with no registered key (off: accept unverified).
    require_known_keys: bool = False

    def update(self, values: Mapping[str, Any]) -> None:
        unknown = set(values) - set(_CONFIG_KEYS)
        if unknown:
            raise EmulatorError(
                f"unknown config keys: {sorted(unknown)}; known: {list(_CONFIG_KEYS)}"
            )
        for key, value in values.items():
            if key in ("expires_in", "max_lifetime"):
                number = _optional_int(value, key)
                if number is None or number < 1:
                    raise EmulatorError(f"{key} must be a positive number of seconds")
                setattr(self, key, number)
            elif key == "scopes":
                if isinstance(value, str):
                    value = value.replace(",", " ").split()
                if not isinstance(value, (list, tuple)) or not value:
                    raise EmulatorError("scopes is a non-empty list")
                self.scopes = tuple(str(s) for s in value)
            elif key == "require_known_keys":
                self.require_known_keys = bool(value)
            else:
                if not isinstance(value, str) or not value:
                    raise EmulatorError(f"{key} is a non-empty string")
                setattr(self, key, value)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["scopes"] = list(self.scopes)
        return data


def _optional_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise EmulatorError(f"{name} must be an integer") from None


def _optional_float(value: Any, name: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise EmulatorError(f"{name} must be a number") from None


class EmulatorState:
    """Tokens, keys, faults, scripted replies and counters, shared by the server thread and in-process tests.

    Every method takes the lock, so tests may call them from their own thread while the server runs.
    """

    def __init__(
        self,
        *,
        expires_in: int = 3600,
        max_lifetime: int = 43200,
        project_id: str = DEFAULT_PROJECT_ID,
        service_account_email: str = DEFAULT_SERVICE_ACCOUNT,
        scopes: tuple[str, ...] | list[str] = (CLOUD_PLATFORM_SCOPE,),
        require_known_keys: bool = False,
        public_keys: Mapping[str, str | bytes] | None = None,
        history: int = 500,
    ) -> None:
        self._lock = threading.RLock()
        self.config = EmulatorConfig()
        self.config.update(
            {
                "expires_in": expires_in,
                "max_lifetime": max_lifetime,
                "project_id": project_id,
                "service_account_email": service_account_email,
                "scopes": list(scopes),
                "require_known_keys": require_known_keys,
            }
        )
        self._history = history
        self._token_ids = itertools.count(1)
        self._request_ids = itertools.count(1)
        self._tokens: dict[str, IssuedToken] = {}
        # email -> {key id or "" -> PEM}
        self._keys: dict[str, dict[str, str]] = {}
        self._faults: list[Fault] = []
        self._replies: collections.deque[ScriptedReply] = collections.deque()
        self._sticky_reply: ScriptedReply | None = None
        self._records: collections.deque[dict[str, Any]] = collections.deque(maxlen=history)
        self._chat_records: collections.deque[dict[str, Any]] = collections.deque(maxlen=100)
        self._counters: collections.Counter[str] = collections.Counter()
        self._original_hosts: collections.Counter[str] = collections.Counter()
        self._grants: collections.Counter[str] = collections.Counter()
        for email, pem in (public_keys or {}).items():
            self.register_key(email, pem)

    # -- configuration -------------------------------------------------------------------------------

    def configure(self, **values: Any) -> dict[str, Any]:
        """Change expires_in, max_lifetime, project_id, service_account_email, scopes, require_known_keys."""
        with self._lock:
            trial = dataclasses.replace(self.config)
            trial.update(values)  # validate everything before changing anything
            self.config = trial
            return self.config.to_json()

    def register_key(
        self, email: str, public_key_pem: str | bytes, key_id: str | None = None
    ) -> None:
        """Verify JWT-bearer assertions from `email` against this public key (PEM, or an X.509 cert PEM)."""
        pem = (
            public_key_pem.decode("ascii") if isinstance(public_key_pem, bytes) else public_key_pem
        )
        _rsa_verifier(pem)  # refuse what cannot verify anything
        with self._lock:
            self._keys.setdefault(email, {})[key_id or ""] = pem

    def known_key_emails(self) -> list[str]:
        with self._lock:
            return sorted(self._keys)

    # -- faults and replies ----------------------------------------------------------------------------

    def add_faults(self, *faults: Fault | Mapping[str, Any]) -> list[dict[str, Any]]:
        parsed = [f if isinstance(f, Fault) else Fault.from_json(dict(f)) for f in faults]
        with self._lock:
            self._faults.extend(parsed)
            return [f.to_json() for f in self._faults]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_json() for f in self._faults]

    def take_fault(self, kind: str) -> Fault | None:
        """The fault the next `kind` request suffers, if any (its count goes down by one)."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.matches(kind):
                    fault.count -= 1
                    if fault.count <= 0:
                        del self._faults[index]
                    self._counters["faults_applied"] += 1
                    return dataclasses.replace(fault, count=1)
            return None

    def queue_reply(self, reply: ScriptedReply | Mapping[str, Any]) -> None:
        """The next chat answer (or, with `repeat`, every answer until reset or replaced)."""
        parsed = reply if isinstance(reply, ScriptedReply) else ScriptedReply.from_json(dict(reply))
        with self._lock:
            if parsed.repeat:
                self._sticky_reply = parsed
            else:
                self._replies.append(parsed)

    def clear_replies(self) -> None:
        with self._lock:
            self._replies.clear()
            self._sticky_reply = None

    def next_reply(self) -> ScriptedReply | None:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
            return self._sticky_reply

    # -- tokens ----------------------------------------------------------------------------------------

    def issue_token(
        self,
        grant: str,
        *,
        principal: str,
        scopes: tuple[str, ...] | list[str] = (),
        lifetime: float | None = None,
    ) -> tuple[str, IssuedToken]:
        """Mint an access token; `lifetime` defaults to the configured expires_in."""
        value = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            seconds = self.config.expires_in if lifetime is None else lifetime
            issued = IssuedToken(
                id=next(self._token_ids),
                grant=grant,
                principal=principal,
                scopes=tuple(scopes) or self.config.scopes,
                issued_at=now,
                expires_at=now + seconds,
            )
            self._tokens[value] = issued
            self._counters["tokens_issued"] += 1
            self._grants[grant] += 1
        return value, issued

    def lookup_token(self, value: str) -> IssuedToken | None:
        """The record of a live token, or None when unknown or expired."""
        with self._lock:
            issued = self._tokens.get(value)
        if issued is None or not issued.live():
            return None
        return issued

    def expire_all(self) -> int:
        """Make every issued token expired now; returns how many were live."""
        now = time.time()
        with self._lock:
            live = [t for t in self._tokens.values() if t.live(now)]
            for issued in live:
                issued.expires_at = now - 1
            return len(live)

    def issued_tokens(self) -> list[dict[str, Any]]:
        with self._lock:
            return [t.describe() for t in self._tokens.values()]

    # -- records ---------------------------------------------------------------------------------------

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[name] += amount

    def record_request(
        self,
        *,
        method: str,
        path: str,
        kind: str,
        original_host: str | None,
        status: int | None,
        fault: str | None,
        token_id: int | None,
    ) -> None:
        with self._lock:
            self._counters[f"requests.{kind}"] += 1
            if original_host:
                self._original_hosts[original_host] += 1
            self._records.append(
                {
                    "id": next(self._request_ids),
                    "time": time.time(),
                    "method": method,
                    "path": path,
                    "kind": kind,
                    "original_host": original_host,
                    "status": status,
                    "fault": fault,
                    "token_id": token_id,
                }
            )

    def record_chat(
        self, *, path: str, headers: Mapping[str, str], raw_body: str, token_id: int | None
    ) -> None:
        try:
            body: Any = json.loads(raw_body)
        except ValueError:
            body = None
        with self._lock:
            self._chat_records.append(
                {
                    "time": time.time(),
                    "path": path,
                    "headers": mask_headers(headers),
                    "body": body,
                    "raw_body": raw_body,
                    "token_id": token_id,
                }
            )

    def requests(
        self, *, kind: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Recent requests (method, path, kind, original host, status, fault, token id), oldest first."""
        with self._lock:
            records = [dict(r) for r in self._records if kind is None or r["kind"] == kind]
        return records[-limit:] if limit else records

    def chat_requests(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Recent chat request bodies and headers (secret headers masked), oldest first."""
        with self._lock:
            records = [dict(r) for r in self._chat_records]
        return records[-limit:] if limit else records

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counters = dict(self._counters)
            return {
                "requests": {kind: counters.get(f"requests.{kind}", 0) for kind in KINDS},
                "original_hosts": dict(self._original_hosts),
                "tokens_issued": counters.get("tokens_issued", 0),
                "tokens_by_grant": dict(self._grants),
                "live_tokens": sum(1 for t in self._tokens.values() if t.live()),
                "chat_ok": counters.get("chat_ok", 0),
                "chat_rejected": counters.get("chat_rejected", 0),
                "token_rejected": counters.get("token_rejected", 0),
                "faults_applied": counters.get("faults_applied", 0),
                "faults_pending": [f.to_json() for f in self._faults],
                "replies_pending": len(self._replies) + (1 if self._sticky_reply else 0),
                "known_keys": sorted(self._keys),
                "config": self.config.to_json(),
            }

    def reset(self) -> None:
        """Forget tokens, faults, replies, records and counters; keep config and registered keys."""
        with self._lock:
            self._tokens.clear()
            self._faults.clear()
            self.clear_replies()
            self._records.clear()
            self._chat_records.clear()
            self._counters.clear()
            self._original_hosts.clear()
            self._grants.clear()

    # -- JWT-bearer verification -----------------------------------------------------------------------

    def verify_assertion(self, assertion: str, *, own_audiences: frozenset[str]) -> dict[str, Any]:
        """The claims of a valid JWT-bearer assertion; EmulatorError with Google's wording otherwise."""
        try:
            header_b64, payload_b64, signature_b64 = assertion.split(".")
            header = json.loads(_b64decode(header_b64))
            claims = json.loads(_b64decode(payload_b64))
            signature = _b64decode(signature_b64)
        except (ValueError, binascii.Error):
            raise EmulatorError(
                "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
            ) from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise EmulatorError("Invalid JWT.")
        if header.get("alg") != "RS256":
            raise EmulatorError("Invalid JWT: unsupported signing algorithm.")
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise EmulatorError("Invalid JWT: No issuer.")
        audience = claims.get("aud")
        if audience not in _GOOGLE_TOKEN_AUDIENCES and audience not in own_audiences:
            raise EmulatorError("Invalid JWT: Failed audience check.")
        now = time.time()
        try:
            issued_at = float(claims["iat"])
            expires_at = float(claims["exp"])
        except (KeyError, TypeError, ValueError):
            raise EmulatorError(
                "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
            ) from None
        if (
            expires_at < now - _CLOCK_SKEW_SECONDS
            or issued_at > now + _CLOCK_SKEW_SECONDS
            or expires_at - issued_at > _MAX_ASSERTION_SECONDS
        ):
            raise EmulatorError(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
                "Check your iat and exp values in the JWT claim."
            )
        with self._lock:
            keys = dict(self._keys.get(issuer, {}))
            require = self.config.require_known_keys
        if not keys:
            if require:
                raise EmulatorError("Invalid JWT Signature.")
            return claims
        key_id = header.get("kid")
        candidates = (
            [keys[key_id]] if isinstance(key_id, str) and key_id in keys else list(keys.values())
        )
        message = f"{header_b64}.{payload_b64}".encode("ascii")
        if not any(_rsa_verifier(pem).verify(message, signature) for pem in candidates):
            raise EmulatorError("Invalid JWT Signature.")
        return claims


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _rsa_verifier(pem: str) -> Any:
    """google-auth's RSA verifier (backed by `cryptography` when installed, else `rsa`)."""
    from google.auth import crypt

    try:
        return crypt.RSAVerifier.from_string(pem)  # type: ignore[no-untyped-call]
    except Exception as err:  # each backend raises its own type for a malformed key
        raise EmulatorError(f"not an RSA public key or certificate PEM: {err}") from None


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers safe to record: credentials replaced by their scheme and `***`."""
    masked: dict[str, str] = {}
    for name, value in headers.items():
        if name.lower() in _SECRET_HEADERS:
            scheme, _, rest = value.partition(" ")
            masked[name] = f"{scheme} ***" if rest else "***"
        else:
            masked[name] = value
    return masked


# ---------------------------------------------------------------------------------------------------------
# Chat completion bodies
# ---------------------------------------------------------------------------------------------------------


def _last_user_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            parts = [
                p.get("text", "")
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            ]
            return " ".join(str(p) for p in parts)
    return ""


def _word_count(value: Any) -> int:
    return len(json.dumps(value).split()) if not isinstance(value, str) else len(value.split())


def sample_for_schema(schema: Any, defs: Mapping[str, Any] | None = None, depth: int = 0) -> Any:
    """A value that satisfies a simple JSON schema (objects, arrays, scalars, enums, $ref, anyOf)."""
    if not isinstance(schema, dict) or depth > 12:
        return None
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return sample_for_schema(defs.get(name), defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            chosen = next(
                (o for o in options if isinstance(o, dict) and o.get("type") != "null"), options[0]
            )
            return sample_for_schema(chosen, defs, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties", {})
        return {name: sample_for_schema(sub, defs, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        items = [sample_for_schema(schema.get("items", {}), defs, depth + 1)]
        return items * int(schema.get("minItems", 1) or 0)
    if kind == "string":
        return {
            "date-time": "2024-01-01T00:00:00Z",
            "date": "2024-01-01",
            "email": "user@example.com",
        }.get(str(schema.get("format")), "emulated")
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return False
    return None


def _default_content(request: Mapping[str, Any]) -> str:
    response_format = request.get("response_format")
    if isinstance(response_format, dict):
        if response_format.get("type") == "json_schema":
            spec = response_format.get("json_schema") or {}
            return json.dumps(sample_for_schema(spec.get("schema", {})))
        if response_format.get("type") == "json_object":
            return json.dumps(
                {"reply": f"Emulated reply to: {_last_user_text(request.get('messages'))[:200]}"}
            )
    return f"Emulated reply to: {_last_user_text(request.get('messages'))[:200]}"


def _normalize_tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI's tool_call shape from either that shape or a short `{"name", "arguments"}` form."""
    normalized = []
    for index, call in enumerate(calls):
        nested = call.get("function")
        function: dict[str, Any] = nested if isinstance(nested, dict) else call
        arguments = function.get("arguments", {})
        normalized.append(
            {
                "id": str(call.get("id") or f"call_emu_{index}_{secrets.token_hex(4)}"),
                "type": "function",
                "function": {
                    "name": str(function.get("name", "tool")),
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                },
            }
        )
    return normalized


def _split_for_stream(text: str, pieces: int = 4) -> list[str]:
    words = re.findall(r"\S+\s*|\s+", text)
    if len(words) <= 1:
        return [text] if text else []
    size = max(1, -(-len(words) // pieces))
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


# ---------------------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def classify(path: str) -> str:
    """Which emulated service a path belongs to (paths of Google's services never collide)."""
    if path == "/" or path.startswith("/computeMetadata/"):
        return "metadata"
    if path in _OAUTH_TOKEN_PATHS or path in _STS_EXCHANGE_PATHS or path in _STS_REFRESH_PATHS:
        return "token"
    if _IAM_PATH.match(path):
        return "iam"
    if _CHAT_PATH.match(path):
        return "chat"
    return "other"


class EmulatorApp:
    """The aiohttp handlers over one EmulatorState."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def build(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        admin = [
            web.get("/__emulator/stats", self.admin_stats),
            web.get("/__emulator/faults", self.admin_faults_list),
            web.post("/__emulator/faults", self.admin_faults_add),
            web.delete("/__emulator/faults", self.admin_faults_clear),
            web.get("/__emulator/config", self.admin_config_get),
            web.post("/__emulator/config", self.admin_config),
            web.post("/__emulator/reply", self.admin_reply),
            web.delete("/__emulator/reply", self.admin_reply_clear),
            web.get("/__emulator/requests", self.admin_requests),
            web.get("/__emulator/tokens", self.admin_tokens),
            web.post("/__emulator/reset", self.admin_reset),
            web.post("/__emulator/expire", self.admin_expire),
            web.post("/__emulator/keys", self.admin_keys),
        ]
        app.add_routes(admin)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    # -- the emulated services --------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        kind = classify(path)
        fault = self.state.take_fault(kind)
        token_id: list[int] = []
        status: int | None = None
        try:
            response = await self._respond(request, kind, fault, token_id)
            status = None if fault is not None and fault.close else response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self.state.record_request(
                method=request.method,
                path=path,
                kind=kind,
                original_host=request.headers.get(ORIGINAL_HOST_HEADER),
                status=status,
                fault=fault.name if fault else None,
                token_id=token_id[0] if token_id else None,
            )

    async def _respond(
        self, request: web.Request, kind: str, fault: Fault | None, token_id: list[int]
    ) -> web.StreamResponse:
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            failed = self._fault_response(request, kind, fault)
            if failed is not None:
                return failed
        if kind == "metadata":
            return self.metadata(request)
        if kind == "token":
            return await self.token(request)
        if kind == "iam":
            return await self.iam(request, token_id)
        if kind == "chat":
            return await self.chat(request, token_id)
        return web.json_response(
            google_error(404, f"The emulator does not serve {request.path}"), status=404
        )

    def _fault_response(
        self, request: web.Request, kind: str, fault: Fault
    ) -> web.StreamResponse | None:
        if fault.close:
            # Drop the connection without a byte of response, like a crashed server or a cut network.
            if request.transport is not None:
                request.transport.abort()
            # Nothing reaches the client; aiohttp drops this reply on the aborted transport quietly.
            return web.Response(status=499)
        if fault.non_json:
            return web.Response(
                status=200,
                text="<html><body><h1>Emulated captive portal</h1></body></html>",
                content_type="text/html",
            )
        if fault.error:
            return web.json_response(fault.body or _OAUTH_ERRORS[fault.error], status=400)
        if fault.status is not None:
            if fault.body is not None:
                body = fault.body
            elif kind == "token":
                body = {
                    "error": "server_error" if fault.status >= 500 else "rate_limit_exceeded",
                    "error_description": f"Emulated fault: HTTP {fault.status}",
                }
            else:
                body = google_error(fault.status, f"Emulated fault: HTTP {fault.status}")
            headers = {"Metadata-Flavor": "Google"} if kind == "metadata" else None
            return web.json_response(body, status=fault.status, headers=headers)
        return None

    async def token(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return _oauth_error(405, "invalid_request", "The token endpoint takes POST.")
        form = await _form_or_json(request)
        path = request.path
        grant = form.get("grant_type", "")
        if path in _STS_EXCHANGE_PATHS:
            return self._sts_exchange(form)
        if path in _STS_REFRESH_PATHS:
            return self._sts_refresh(request, form)
        if grant == "refresh_token":
            missing = [
                k for k in ("refresh_token", "client_id", "client_secret") if not form.get(k)
            ]
            if missing:
                self.state.count("token_rejected")
                return _oauth_error(
                    400, "invalid_request", f"Missing required parameter: {missing[0]}"
                )
            scopes = form.get("scope", "").split() or [CLOUD_PLATFORM_SCOPE]
            value, issued = self.state.issue_token(
                "refresh_token", principal=f"user:{form['client_id']}", scopes=scopes
            )
            return _token_response(value, issued)
        if grant == JWT_BEARER_GRANT:
            host = request.host
            own = frozenset({f"http://{host}{p}" for p in _OAUTH_TOKEN_PATHS})
            try:
                claims = self.state.verify_assertion(form.get("assertion", ""), own_audiences=own)
            except EmulatorError as err:
                self.state.count("token_rejected")
                return _oauth_error(400, "invalid_grant", str(err))
            if claims.get("target_audience"):
                return _oauth_error(
                    400, "invalid_request", "The emulator does not issue ID tokens."
                )
            scopes = str(claims.get("scope", "")).split()
            if not scopes:
                self.state.count("token_rejected")
                return _oauth_error(
                    400, "invalid_scope", "Invalid OAuth scope or ID token audience provided."
                )
            principal = f"serviceAccount:{claims.get('sub') or claims['iss']}"
            value, issued = self.state.issue_token("jwt_bearer", principal=principal, scopes=scopes)
            return _token_response(value, issued)
        self.state.count("token_rejected")
        return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")

    def _sts_exchange(self, form: Mapping[str, str]) -> web.StreamResponse:
        if form.get("grant_type") != TOKEN_EXCHANGE_GRANT:
            self.state.count("token_rejected")
            return _oauth_error(400, "unsupported_grant_type", "Unsupported grant_type.")
        for name in ("subject_token", "subject_token_type"):
            if not form.get(name):
                self.state.count("token_rejected")
                return _oauth_error(400, "invalid_request", f"Missing required parameter: {name}")
        scopes = form.get("scope", "").split() or [CLOUD_PLATFORM_SCOPE]
        value, issued = self.state.issue_token(
            "token_exchange", principal=f"principal:{form.get('audience', '')}", scopes=scopes
        )
        return web.json_response(
            {
                "access_token": value,
                "issued_token_type": ACCESS_TOKEN_TYPE,
                "token_type": "Bearer",
                "expires_in": _expires_in(issued),
            }
        )

    def _sts_refresh(self, request: web.Request, form: Mapping[str, str]) -> web.StreamResponse:
        client_id, client_secret = _basic_auth(request.headers.get("Authorization", ""))
        client_id = client_id or form.get("client_id", "")
        client_secret = client_secret or form.get("client_secret", "")
        if form.get("grant_type") != "refresh_token":
            self.state.count("token_rejected")
            return _oauth_error(400, "unsupported_grant_type", "Unsupported grant_type.")
        if not form.get("refresh_token"):
            self.state.count("token_rejected")
            return _oauth_error(400, "invalid_request", "Missing required parameter: refresh_token")
        if not client_id or not client_secret:
            self.state.count("token_rejected")
            return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
        value, issued = self.state.issue_token(
            "sts_refresh_token",
            principal=f"principalSet:{client_id}",
            scopes=[CLOUD_PLATFORM_SCOPE],
        )
        return _token_response(value, issued)

    async def iam(self, request: web.Request, token_id: list[int]) -> web.StreamResponse:
        match = _IAM_PATH.match(request.path)
        assert match is not None  # classify() said so
        email, rest = match["email"], match["rest"]
        caller = self._bearer(request)
        if rest == "/allowedLocations":
            # google-auth's regional access boundary lookup; this answer is Google's "no boundary".
            return web.json_response({"locations": [], "encodedLocations": "0x0"})
        if caller is None:
            return web.json_response(google_error(401, _UNAUTHENTICATED_MESSAGE), status=401)
        token_id.append(caller.id)
        if rest != ":generateAccessToken" or request.method != "POST":
            return web.json_response(
                google_error(404, f"The emulator does not serve {rest}"), status=404
            )
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return web.json_response(
                google_error(400, "Invalid JSON payload received."), status=400
            )
        scopes = body.get("scope")
        if isinstance(scopes, str):
            scopes = [scopes]
        if not scopes or not isinstance(scopes, list):
            return web.json_response(google_error(400, "Scope is required."), status=400)
        lifetime_text = str(body.get("lifetime") or "3600s")
        parsed = _LIFETIME.match(lifetime_text)
        if parsed is None:
            return web.json_response(
                google_error(400, f"Invalid value at 'lifetime' ({lifetime_text})."), status=400
            )
        lifetime = float(parsed["seconds"])
        max_lifetime = self.state.config.max_lifetime
        if lifetime > max_lifetime or lifetime <= 0:
            return web.json_response(
                google_error(
                    400,
                    f"The lifetime of the token must be between 1s and {max_lifetime}s; "
                    f"requested {lifetime_text}.",
                ),
                status=400,
            )
        value, issued = self.state.issue_token(
            "impersonation",
            principal=f"serviceAccount:{email}",
            scopes=[str(s) for s in scopes],
            lifetime=lifetime,
        )
        return web.json_response({"accessToken": value, "expireTime": rfc3339(issued.expires_at)})

    def metadata(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Metadata-Flavor") != "Google":
            return web.Response(
                status=403,
                text="Missing required header: Metadata-Flavor: Google\n",
                content_type="text/plain",
            )
        flavor = {"Metadata-Flavor": "Google"}
        config = self.state.config
        path = request.path
        text_values = {
            "/": "computeMetadata/\n",
            "/computeMetadata/": "v1/\n",
            "/computeMetadata/v1/project/project-id": config.project_id,
            "/computeMetadata/v1/project/numeric-project-id": "123456789012",
            "/computeMetadata/v1/universe/universe-domain": "googleapis.com",
            "/computeMetadata/v1/instance/zone": "projects/123456789012/zones/us-central1-a",
            "/computeMetadata/v1/instance/id": "1234567890123456789",
            "/computeMetadata/v1/instance/service-accounts/": f"default/\n{config.service_account_email}/\n",
        }
        if path in text_values:
            return web.Response(
                text=text_values[path], content_type="application/text", headers=flavor
            )
        match = _METADATA_SA_PATH.match(path)
        if match is None or match["account"] not in ("default", config.service_account_email):
            return web.Response(
                status=404, text="Not Found\n", content_type="text/html", headers=flavor
            )
        leaf = match["leaf"]
        info = {
            "aliases": ["default"],
            "email": config.service_account_email,
            "scopes": list(config.scopes),
        }
        if leaf == "":
            if request.query.get("recursive") == "true":
                return web.json_response(info, headers=flavor)
            return web.Response(
                text="aliases\nemail\nidentity\nscopes\ntoken\n",
                content_type="application/text",
                headers=flavor,
            )
        if leaf == "email":
            return web.Response(
                text=config.service_account_email, content_type="application/text", headers=flavor
            )
        if leaf == "aliases":
            return web.Response(text="default", content_type="application/text", headers=flavor)
        if leaf == "scopes":
            return web.Response(
                text="\n".join(config.scopes) + "\n",
                content_type="application/text",
                headers=flavor,
            )
        if leaf == "token":
            requested = request.query.get("scopes", "").replace(",", " ").split()
            value, issued = self.state.issue_token(
                "metadata",
                principal=f"serviceAccount:{config.service_account_email}",
                scopes=requested or list(config.scopes),
            )
            return web.json_response(
                {"access_token": value, "expires_in": _expires_in(issued), "token_type": "Bearer"},
                headers=flavor,
            )
        return web.Response(
            status=404, text="Not Found\n", content_type="text/html", headers=flavor
        )

    def _bearer(self, request: web.Request) -> IssuedToken | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return self.state.lookup_token(value.strip())

    async def chat(self, request: web.Request, token_id: list[int]) -> web.StreamResponse:
        raw = await request.text()
        caller = self._bearer(request)
        self.state.record_chat(
            path=request.path,
            headers=request.headers,
            raw_body=raw,
            token_id=caller.id if caller else None,
        )
        if caller is None:
            self.state.count("chat_rejected")
            return web.json_response(google_error(401, _UNAUTHENTICATED_MESSAGE), status=401)
        token_id.append(caller.id)
        if request.method != "POST":
            return web.json_response(google_error(405, "Use POST."), status=405)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return web.json_response(
                google_error(400, "Invalid JSON payload received."), status=400
            )
        reply = self.state.next_reply()
        if reply is not None and reply.status is not None:
            error_body = (
                reply.body
                if reply.body is not None
                else google_error(reply.status, "Scripted error")
            )
            return web.json_response(error_body, status=reply.status)
        self.state.count("chat_ok")
        match = _CHAT_PATH.match(request.path)
        model = str(body.get("model") or (match["endpoint"] if match else "emulated"))
        tool_calls = _normalize_tool_calls(reply.tool_calls) if reply and reply.tool_calls else None
        if reply is not None and reply.text is not None:
            content: str | None = reply.text
        elif tool_calls:
            content = None
        else:
            content = _default_content(body)
        completion_id = f"chatcmpl-emu-{secrets.token_hex(8)}"
        created = int(time.time())
        prompt_tokens = max(1, _word_count(body.get("messages", [])))
        completion_tokens = max(1, _word_count(content or "") + _word_count(tool_calls or ""))
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        finish_reason = "tool_calls" if tool_calls else "stop"
        if body.get("stream"):
            return await self._stream(
                request,
                completion_id=completion_id,
                created=created,
                model=model,
                content=content,
                tool_calls=tool_calls,
                finish_reason=finish_reason,
                usage=usage if (body.get("stream_options") or {}).get("include_usage") else None,
            )
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return web.json_response(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": finish_reason,
                        "logprobs": None,
                    }
                ],
                "usage": usage,
            }
        )

    async def _stream(
        self,
        request: web.Request,
        *,
        completion_id: str,
        created: int,
        model: str,
        content: str | None,
        tool_calls: list[dict[str, Any]] | None,
        finish_reason: str,
        usage: dict[str, int] | None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
                ],
            }

        events: list[dict[str, Any]] = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in _split_for_stream(content or "")]
        for index, call in enumerate(tool_calls or []):
            events.append(chunk({"tool_calls": [{"index": index, **call}]}))
        events.append(chunk({}, finish_reason))
        if usage is not None:
            events.append(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
            )
        for event in events:
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # -- admin API ------------------------------------------------------------------------------------

    async def admin_stats(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.state.stats())

    async def admin_faults_list(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"faults": self.state.pending_faults()})

    async def admin_faults_add(self, request: web.Request) -> web.StreamResponse:
        async def apply(body: Any) -> Any:
            items = body if isinstance(body, list) else [body]
            return {"faults": self.state.add_faults(*(Fault.from_json(i) for i in items))}

        return await _admin_call(request, apply)

    async def admin_faults_clear(self, request: web.Request) -> web.StreamResponse:
        self.state.clear_faults()
        return web.json_response({"faults": []})

    async def admin_config_get(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.state.config.to_json())

    async def admin_config(self, request: web.Request) -> web.StreamResponse:
        async def apply(body: Any) -> Any:
            if not isinstance(body, dict):
                raise EmulatorError("config is a JSON object")
            return self.state.configure(**body)

        return await _admin_call(request, apply)

    async def admin_reply(self, request: web.Request) -> web.StreamResponse:
        async def apply(body: Any) -> Any:
            for item in body if isinstance(body, list) else [body]:
                self.state.queue_reply(ScriptedReply.from_json(item))
            return {"replies_pending": self.state.stats()["replies_pending"]}

        return await _admin_call(request, apply)

    async def admin_reply_clear(self, request: web.Request) -> web.StreamResponse:
        self.state.clear_replies()
        return web.json_response({"replies_pending": 0})

    async def admin_requests(self, request: web.Request) -> web.StreamResponse:
        kind = request.query.get("kind") or None
        try:
            limit = int(request.query["limit"]) if "limit" in request.query else None
        except ValueError:
            return web.json_response(google_error(400, "limit must be an integer"), status=400)
        return web.json_response(
            {
                "requests": self.state.requests(kind=kind, limit=limit),
                "chat": self.state.chat_requests(limit),
            }
        )

    async def admin_tokens(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"tokens": self.state.issued_tokens()})

    async def admin_reset(self, request: web.Request) -> web.StreamResponse:
        self.state.reset()
        return web.json_response({"reset": True})

    async def admin_expire(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"expired": self.state.expire_all()})

    async def admin_keys(self, request: web.Request) -> web.StreamResponse:
        async def apply(body: Any) -> Any:
            if (
                not isinstance(body, dict)
                or not body.get("email")
                or not body.get("public_key_pem")
            ):
                raise EmulatorError(
                    'keys takes {"email": ..., "public_key_pem": ..., "key_id": optional}'
                )
            self.state.register_key(
                str(body["email"]), str(body["public_key_pem"]), body.get("key_id")
            )
            return {"known_keys": self.state.known_key_emails()}

        return await _admin_call(request, apply)


async def _admin_call(
    request: web.Request, apply: Callable[[Any], Awaitable[Any]]
) -> web.StreamResponse:
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        return web.json_response(google_error(400, "the admin API takes a JSON body"), status=400)
    try:
        return web.json_response(await apply(body))
    except EmulatorError as err:
        return web.json_response(google_error(400, str(err)), status=400)


async def _form_or_json(request: web.Request) -> dict[str, str]:
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    form = await request.post()
    return {k: str(v) for k, v in form.items()}


def _basic_auth(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
    except (ValueError, binascii.Error):
        return "", ""
    return user, password


def _expires_in(issued: IssuedToken) -> int:
    return max(0, round(issued.expires_at - issued.issued_at))


def _token_response(value: str, issued: IssuedToken) -> web.StreamResponse:
    return web.json_response(
        {
            "access_token": value,
            "expires_in": _expires_in(issued),
            "token_type": "Bearer",
            "scope": " ".join(issued.scopes),
        }
    )


def _oauth_error(status: int, error: str, description: str) -> web.StreamResponse:
    return web.json_response({"error": error, "error_description": description}, status=status)


def build_app(state: EmulatorState | None = None) -> web.Application:
    """The aiohttp application serving every emulated endpoint over `state` (a fresh one by default)."""
    return EmulatorApp(state or EmulatorState()).build()


# ---------------------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


async def _start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    # A short shutdown grace: a test stopping the server mid-delay or mid-stream must not wait a minute.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.25)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)


async def serve_forever(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    state: EmulatorState | None = None,
    on_ready: Callable[[str, int], None] | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
) -> None:
    """Serve until `stop` is set or (with handle_signals) SIGINT/SIGTERM arrives; `on_ready(host, port)` once bound."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if handle_signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
                installed.append(signum)
    runner, bound = await _start(build_app(state), host, port)
    try:
        if on_ready is not None:
            on_ready(host, bound)
        await stop.wait()
    finally:
        await runner.cleanup()
        for signum in installed:
            loop.remove_signal_handler(signum)


def run(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    on_ready: Callable[[str, int], None] | None = None,
    **config: Any,
) -> None:
    """Run the emulator in the foreground until SIGINT/SIGTERM (the `vertex-env emulator` command)."""
    asyncio.run(serve_forever(host, port, state=EmulatorState(**config), on_ready=on_ready))


class EmulatorServer:
    """The emulator on a background thread with its own event loop: `with EmulatorServer() as emu: ...`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **config: Any) -> None:
        self.host = host
        self.port = port
        self.state = EmulatorState(**config)
        self._thread: LoopThread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def host_port(self) -> str:
        """`HOST:PORT`, the value of VERTEX_ENV_EMULATOR_HOST."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host_port}"

    def chat_base_url(
        self,
        project: str = DEFAULT_PROJECT_ID,
        location: str = "us-central1",
        endpoint: str = "openapi",
        version: str = "v1",
    ) -> str:
        """An OPENAI_BASE_URL that points at this emulator."""
        return f"{self.url}/{version}/projects/{project}/locations/{location}/endpoints/{endpoint}"

    @property
    def admin(self) -> EmulatorAdmin:
        from vertex_env.emulator.admin import EmulatorAdmin

        return EmulatorAdmin(self.url)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> EmulatorServer:
        if self._thread is not None:
            return self
        thread = LoopThread(f"vertex-env-emulator-{id(self):x}")
        self._runner, self.port = thread.start(
            lambda: _start(build_app(self.state), self.host, self.port), self._cleanup
        )
        self._thread = thread
        return self

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmulatorServer({self.url if self.running else 'stopped'})"

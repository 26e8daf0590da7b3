"""What a test can inject into the emulator: faults, scripted chat replies, and the error for a bad admin request."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

#: Kinds of traffic; a fault targets one of them or `any`. "chat" is the OpenAI-compatible chat completions and
#: embeddings; "catalog" the Model Garden catalog, the endpoints list and `…/models` under a base URL.
KINDS = ("token", "iam", "metadata", "chat", "catalog", "other")
FAULT_TARGETS = (*KINDS, "any")

#: The OAuth2 / STS error bodies a fault can answer with (HTTP 400), by fault `error` name. The token kind
#: covers the OAuth2 token endpoint and STS alike, so each reaches every credential type's refresh.
OAUTH_ERRORS: dict[str, dict[str, str]] = {
    # A revoked or expired refresh token (authorized_user, external_account_authorized_user).
    "invalid_grant": {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    },
    # A Workspace reauth policy demands a fresh login.
    "invalid_rapt": {
        "error": "invalid_grant",
        "error_description": "reauth related error (invalid_rapt)",
        "error_subtype": "invalid_rapt",
    },
    # STS: the audience is not a workload identity provider's full resource name.
    "invalid_request": {
        "error": "invalid_request",
        "error_description": 'Invalid value for "audience". This value should be the full resource '
        "name of the Identity Provider. See "
        "https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token for the list of "
        "possible formats.",
    },
    # STS: the subject token's `aud` is not one the provider allows.
    "audience_mismatch": {
        "error": "invalid_grant",
        "error_description": "The audience in ID Token [https://example.com/unexpected] does not "
        "match the expected audience.",
    },
    # STS: the provider's attribute condition rejects the subject token.
    "unauthorized_client": {
        "error": "unauthorized_client",
        "error_description": "The given credential is rejected by the attribute condition.",
    },
    # STS: the pool or provider is disabled, deleted or missing.
    "invalid_target": {
        "error": "invalid_target",
        "error_description": 'The target service indicated by the "audience" parameters is invalid. '
        "This might either be because the pool or provider is disabled or deleted or because it "
        "doesn't exist.",
    },
}


class EmulatorError(ValueError):
    """A bad admin request or configuration value (the admin API answers it with 400)."""


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
    #: Seconds between the bytes of the answer's body (a slow or hostile network; the headers come at once).
    drip: float | None = None

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
            status=optional_int(data.get("status"), "status"),
            error=data.get("error"),
            delay=optional_float(data.get("delay"), "delay"),
            non_json=bool(data.get("non_json", False)),
            close=bool(data.get("close", False)),
            body=data.get("body"),
            count=optional_int(data.get("count"), "count") or 1,
            drip=optional_float(data.get("drip"), "drip"),
        )
        if fault.error is not None and fault.error not in OAUTH_ERRORS:
            raise EmulatorError(f"fault error must be one of {sorted(OAUTH_ERRORS)}")
        effects = [fault.status is not None, fault.error is not None, fault.non_json, fault.close]
        if sum(effects) > 1:
            raise EmulatorError("a fault has one effect: status, error, non_json or close")
        if sum(effects) == 0 and fault.delay is None and fault.drip is None:
            raise EmulatorError("a fault needs status, error, delay, drip, non_json or close")
        if fault.drip is not None and not 0 < fault.drip <= 60:
            raise EmulatorError("fault drip must be between 0 and 60 seconds")
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
        return "drip" if self.drip else "delay"


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
            status=optional_int(data.get("status"), "status"),
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


def optional_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise EmulatorError(f"{name} must be an integer") from None


def optional_float(value: Any, name: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise EmulatorError(f"{name} must be a number") from None


async def drip(request: web.Request, response: web.Response, interval: float) -> web.StreamResponse:
    """`response` (a whole aiohttp Response) sent with its headers at once and its body one byte every
    `interval` seconds: an answer that keeps a per-read timeout alive forever."""
    import asyncio

    from aiohttp import web

    body = response.body if isinstance(response.body, bytes) else b""
    stream = web.StreamResponse(status=response.status, reason=response.reason)
    stream.content_type = response.content_type
    stream.content_length = len(body)
    await stream.prepare(request)
    try:
        for index in range(len(body)):
            await stream.write(body[index : index + 1])
            await asyncio.sleep(interval)
        await stream.write_eof()
    except ConnectionResetError:
        pass  # the client gave up: what it is meant to do
    return stream

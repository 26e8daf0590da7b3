"""Vertex AI's OpenAI-compatible endpoint: chat completions (JSON and SSE) and embeddings, behind Google's checks.

Every request passes the checks Google makes, in its order, each answered with Google's body: a bearer token
(401 CREDENTIALS_MISSING / ACCESS_TOKEN_EXPIRED / ACCESS_TOKEN_TYPE_UNSUPPORTED), the cloud-platform scope
(403 ACCESS_TOKEN_SCOPE_INSUFFICIENT), an `x-goog-user-project` the caller may use (403 USER_PROJECT_DENIED),
and the API enabled in the consumer project (403 SERVICE_DISABLED). Answers are default, schema-shaped or
scripted by a test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import struct
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from vertex_env.config.values import CLOUD_PLATFORM_SCOPE
from vertex_env.emulator import google_errors
from vertex_env.emulator.google_errors import VERTEX_SERVICE, google_error, status_error
from vertex_env.emulator.state import EmulatorState, IssuedToken, bearer_value

#: Chat completions and embeddings (one kind of traffic: "chat").
VERTEX_PATH = re.compile(
    r"^/(?P<version>v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/endpoints/(?P<endpoint>[^/]+)/(?P<operation>chat/completions|embeddings)$"
)
#: text-embedding-005's size, the default when a request names no `dimensions`.
DEFAULT_EMBEDDING_DIMENSIONS = 768
_MAX_EMBEDDING_DIMENSIONS = 3072
USER_PROJECT_HEADER = "X-Goog-User-Project"


def _method(version: str, operation: str) -> str:
    name = "ChatCompletions" if operation == "chat/completions" else "Embeddings"
    return f"google.cloud.aiplatform.{version}.PredictionService.{name}"


def authorize(
    state: EmulatorState, request: web.Request
) -> tuple[IssuedToken | None, web.StreamResponse | None]:
    """The caller's token record, or Google's refusal (401/403) as a response."""
    match = VERTEX_PATH.match(request.path)
    assert match is not None  # classify() said so
    method = _method(match["version"], match["operation"])
    value = bearer_value(request.headers.get("Authorization", ""))
    record = state.token_record(value) if value else None
    refusal: tuple[int, dict[str, Any]] | None = None
    if value is None:
        refusal = 401, google_errors.unauthenticated("CREDENTIALS_MISSING", VERTEX_SERVICE, method)
    elif record is None:
        refusal = (
            401,
            google_errors.unauthenticated("ACCESS_TOKEN_TYPE_UNSUPPORTED", VERTEX_SERVICE, method),
        )
    elif not record.live(state.now()):
        refusal = 401, google_errors.unauthenticated("ACCESS_TOKEN_EXPIRED", VERTEX_SERVICE, method)
    elif CLOUD_PLATFORM_SCOPE not in record.scopes:
        refusal = 403, google_errors.scope_insufficient(VERTEX_SERVICE, method)
    else:
        config = state.config
        user_project = request.headers.get(USER_PROJECT_HEADER, "").strip()
        consumer = user_project or match["project"]
        if user_project and user_project in config.denied_projects:
            refusal = 403, google_errors.user_project_denied(user_project, VERTEX_SERVICE)
        elif consumer in config.disabled_projects:
            refusal = 403, google_errors.service_disabled(consumer, VERTEX_SERVICE)
    if refusal is not None:
        state.count("chat_rejected")
        return None, web.json_response(refusal[1], status=refusal[0])
    return record, None


async def _json_body(
    state: EmulatorState, request: web.Request, token_id: list[int]
) -> tuple[dict[str, Any] | None, web.StreamResponse | None]:
    """The authorized request's JSON object, or the response refusing it."""
    raw = await request.text()
    caller, refused = authorize(state, request)
    state.record_chat(
        path=request.path,
        headers=request.headers,
        raw_body=raw,
        token_id=caller.id if caller else None,
    )
    if refused is not None:
        return None, refused
    assert caller is not None
    token_id.append(caller.id)
    if request.method != "POST":
        return None, web.json_response(google_error(405, "Use POST."), status=405)
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return None, web.json_response(
            google_error(400, "Invalid JSON payload received."), status=400
        )
    return body, None


async def respond(
    state: EmulatorState, request: web.Request, token_id: list[int]
) -> web.StreamResponse:
    """Chat completions or embeddings, by path."""
    match = VERTEX_PATH.match(request.path)
    if match is not None and match["operation"] == "embeddings":
        return await embeddings(state, request, token_id)
    return await chat(state, request, token_id)


async def chat(
    state: EmulatorState, request: web.Request, token_id: list[int]
) -> web.StreamResponse:
    body, refused = await _json_body(state, request, token_id)
    if body is None:
        assert refused is not None
        return refused
    reply = state.next_reply()
    if reply is not None and reply.status is not None:
        error_body = reply.body if reply.body is not None else status_error(reply.status)
        return web.json_response(error_body, status=reply.status)
    state.count("chat_ok")
    match = VERTEX_PATH.match(request.path)
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
        return await _stream(
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
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
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


async def embeddings(
    state: EmulatorState, request: web.Request, token_id: list[int]
) -> web.StreamResponse:
    """OpenAI's embeddings response: one deterministic unit vector per input (float list or base64)."""
    body, refused = await _json_body(state, request, token_id)
    if body is None:
        assert refused is not None
        return refused
    inputs = body.get("input")
    if isinstance(inputs, str) or (
        isinstance(inputs, list) and inputs and all(isinstance(i, int) for i in inputs)
    ):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        return web.json_response(
            google_error(400, "input is a string or a non-empty list of strings"), status=400
        )
    dimensions = body.get("dimensions", DEFAULT_EMBEDDING_DIMENSIONS)
    if (
        not isinstance(dimensions, int)
        or isinstance(dimensions, bool)
        or not 1 <= dimensions <= _MAX_EMBEDDING_DIMENSIONS
    ):
        return web.json_response(
            google_error(400, f"dimensions must be between 1 and {_MAX_EMBEDDING_DIMENSIONS}"),
            status=400,
        )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        return web.json_response(
            google_error(400, "encoding_format is float or base64"), status=400
        )
    state.count("chat_ok")
    match = VERTEX_PATH.match(request.path)
    model = str(body.get("model") or (match["endpoint"] if match else "emulated"))
    data = []
    for index, item in enumerate(inputs):
        vector = _embedding(json.dumps(item) if not isinstance(item, str) else item, dimensions)
        packed: Any = (
            base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii")
            if encoding == "base64"
            else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": packed})
    prompt_tokens = sum(max(1, _word_count(item)) for item in inputs)
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }
    )


def _embedding(text: str, dimensions: int) -> list[float]:
    """A unit vector that depends only on the text (equal texts embed equally)."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        raw.extend((byte - 127.5) / 127.5 for byte in digest)
        counter += 1
    vector = raw[:dimensions]
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in vector]

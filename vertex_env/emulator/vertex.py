"""Vertex AI's surfaces: the OpenAI-compatible endpoint (chat completions in JSON and SSE, embeddings) on
`openapi` and on self-deployed endpoint IDs, the Model Garden catalog, and the endpoints list.

Every request passes the checks Google makes, in its order, each answered with Google's body: a bearer token
(401 CREDENTIALS_MISSING / ACCESS_TOKEN_EXPIRED / ACCESS_TOKEN_TYPE_UNSUPPORTED), the cloud-platform scope
(403 ACCESS_TOKEN_SCOPE_INSUFFICIENT), an `x-goog-user-project` the caller may use (403 USER_PROJECT_DENIED),
and the API enabled in the consumer project (403 SERVICE_DISABLED). Answers are default, schema-shaped or
scripted by a test. `…/endpoints/{any}/models` answers Google's HTML 404 page, as Vertex does: that route
does not exist there.
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

from vertex_env.config.routing import ORIGINAL_HOST_HEADER
from vertex_env.config.values import CLOUD_PLATFORM_SCOPE
from vertex_env.emulator import catalog, google_errors
from vertex_env.emulator.google_errors import VERTEX_SERVICE, google_error, status_error
from vertex_env.emulator.state import EmulatorState, IssuedToken, bearer_value

#: Chat completions and embeddings (one kind of traffic: "chat").
VERTEX_PATH = re.compile(
    r"^/(?P<version>v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/endpoints/(?P<endpoint>[^/]+)/(?P<operation>chat/completions|embeddings)$"
)
#: Model Garden: ListPublisherModels (`…/models`) and GetPublisherModel (`…/models/{id}`).
CATALOG_PATH = re.compile(
    r"^/(?P<version>v1|v1beta1)/publishers/(?P<publisher>[^/]+)/models(?:/(?P<model>[^/]+))?$"
)
#: ListEndpoints of a project and location.
ENDPOINTS_PATH = re.compile(
    r"^/(?P<version>v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/endpoints$"
)
#: OpenAI's model listing under an OpenAI-compatible base URL: no such route on Vertex.
OPENAI_MODELS_PATH = re.compile(
    r"^/(?:v1|v1beta1)/projects/[^/]+/locations/(?P<location>[^/]+)/endpoints/[^/]+/models(?:/.*)?$"
)
#: text-embedding-005's size, the default when a request names no `dimensions`.
DEFAULT_EMBEDDING_DIMENSIONS = 768
_MAX_EMBEDDING_DIMENSIONS = 3072
USER_PROJECT_HEADER = "X-Goog-User-Project"


def _method(version: str, operation: str) -> str:
    name = "ChatCompletions" if operation == "chat/completions" else "Embeddings"
    return f"google.cloud.aiplatform.{version}.PredictionService.{name}"


def google_host(location: str) -> str:
    """The host Vertex serves a location on: `aiplatform.googleapis.com` for global, else the regional one."""
    return (
        "aiplatform.googleapis.com"
        if location == "global"
        else f"{location}-aiplatform.googleapis.com"
    )


def error_response(request: web.Request, body: dict[str, Any], status: int) -> web.StreamResponse:
    """Google's error answer: on the OpenAI-compatible paths wrapped in a list, as Vertex sends it there."""
    if VERTEX_PATH.match(request.path):
        return web.json_response(google_errors.openai_wrapped(body), status=status)
    return web.json_response(body, status=status)


def authorize(
    state: EmulatorState,
    request: web.Request,
    method: str | None = None,
    project: str | None = None,
    note: dict[str, Any] | None = None,
    *,
    permission: str = "aiplatform.endpoints.predict",
    resource: str | None = None,
) -> tuple[IssuedToken | None, web.StreamResponse | None]:
    """The caller's token record, or Google's refusal (401/403) as a response.

    `method` is the RPC named in a refusal (the chat path's by default); `project` the URL's project, None where
    the URL names none (the Model Garden catalog): then only the token is checked. Then the project refusals
    switched on (google_errors.REFUSALS), in the order Vertex checks them; `permission` and `resource` are what
    an IAM_PERMISSION_DENIED names."""
    match = VERTEX_PATH.match(request.path)
    if method is None:
        assert match is not None  # the chat path, as classify() said
        method = _method(match["version"], match["operation"])
        project = match["project"]
        resource = f"projects/{match['project']}/locations/{match['location']}/endpoints/{match['endpoint']}"
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
    elif project is not None:
        refusal = _project_refusal(
            state, request, record, project, permission, resource or f"projects/{project}"
        )
    if refusal is not None:
        state.count("chat_rejected")
        if note is not None:
            note["reason"] = error_reason(refusal[1])
        return None, error_response(request, refusal[1], refusal[0])
    return record, None


def _project_refusal(
    state: EmulatorState,
    request: web.Request,
    caller: IssuedToken,
    project: str,
    permission: str,
    resource: str,
) -> tuple[int, dict[str, Any]] | None:
    """The first project refusal switched on for this request, in Vertex's order (google_errors.REFUSALS)."""
    user_project = request.headers.get(USER_PROJECT_HEADER, "").strip()
    consumer = user_project or project
    if user_project and state.refused(user_project, "USER_PROJECT_DENIED"):
        return 403, google_errors.user_project_denied(user_project, VERTEX_SERVICE)
    if not catalog.PROJECT_NAME_SHAPE.match(project) or state.refused(project, "CONSUMER_INVALID"):
        return 403, google_errors.consumer_invalid(project, VERTEX_SERVICE)
    if (
        not user_project
        and caller.grant == "refresh_token"
        and state.refused(project, "QUOTA_PROJECT_REQUIRED")
    ):
        return 403, google_errors.quota_project_required(VERTEX_SERVICE)
    if state.refused(consumer, "SERVICE_DISABLED"):
        return 403, google_errors.service_disabled(consumer, VERTEX_SERVICE)
    if state.refused(consumer, "BILLING_DISABLED"):
        return 403, google_errors.billing_disabled(consumer, VERTEX_SERVICE)
    if state.refused(project, "VPC_SERVICE_CONTROLS"):
        uid = base64.urlsafe_b64encode(secrets.token_bytes(36)).decode("ascii")
        return 403, google_errors.vpc_service_controls(
            state.project_number(project), VERTEX_SERVICE, uid
        )
    if state.refused(project, "IAM_PERMISSION_DENIED"):
        return 403, google_errors.iam_permission_denied(permission, resource)
    return None


def _quota_refusal(
    state: EmulatorState, request: web.Request, project: str, location: str
) -> tuple[int, dict[str, Any]] | None:
    """429 RESOURCE_EXHAUSTED when switched on for the consumer project (after every other check)."""
    consumer = request.headers.get(USER_PROJECT_HEADER, "").strip() or project
    if state.refused(consumer, "RESOURCE_EXHAUSTED"):
        return 429, google_errors.rate_limit_exceeded(
            consumer, state.project_number(consumer), location
        )
    return None


def error_reason(body: dict[str, Any]) -> str | None:
    """The ErrorInfo reason of a Google error body, else its status name."""
    error = body.get("error") or {}
    for detail in error.get("details") or []:
        if detail.get("@type") == google_errors.ERROR_INFO_TYPE:
            return str(detail.get("reason"))
    status = error.get("status")
    return str(status) if status else None


async def _json_body(
    state: EmulatorState, request: web.Request, token_id: list[int], note: dict[str, Any]
) -> tuple[dict[str, Any] | None, web.StreamResponse | None]:
    """The authorized request's JSON object, or the response refusing it: the caller and project first,
    then (on `openapi`) a model the catalog serves in the location, then the project's quota."""
    raw = await request.text()
    _note_model(note, raw)
    caller, refused = authorize(state, request, note=note)
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

    def refuse(status: int, body: dict[str, Any]) -> tuple[None, web.StreamResponse]:
        note["reason"] = error_reason(body)
        return None, error_response(request, body, status)

    if request.method != "POST":
        return refuse(405, google_error(405, "Use POST."))
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return refuse(400, google_error(400, "Invalid JSON payload received."))
    match = VERTEX_PATH.match(request.path)
    assert match is not None  # classify() said so
    if match["endpoint"] == "openapi":
        unserved = _unserved_model(state, match, body.get("model"))
        if unserved is not None:
            return refuse(*unserved)
    quota = _quota_refusal(state, request, match["project"], match["location"])
    if quota is not None:
        return refuse(*quota)
    return body, None


def _unserved_model(
    state: EmulatorState, match: re.Match[str], model: Any
) -> tuple[int, dict[str, Any]] | None:
    """Vertex's refusal of the model an `openapi` request names, or None when the location serves it."""
    if not isinstance(model, str) or not model:
        return 400, google_error(400, "Model is required.")
    publisher, _, model_id = model.partition("/")
    found = state.catalog_model(model_id) if publisher == "google" and model_id else None
    if found is None or not found.serves(match["location"]):
        # No publisher, another publisher, a model the catalog lacks, or a location that does not serve it (or
        # that Vertex does not serve at all): one answer for all.
        return 404, google_errors.publisher_model_not_found(
            match["project"], match["location"], model if publisher != model else f"google/{model}"
        )
    wanted = "embedding" if match["operation"] == "embeddings" else "chat"
    if found.kind != wanted:
        return 400, google_error(400, "The request is not supported by this model.")
    return None


async def respond(
    state: EmulatorState, request: web.Request, token_id: list[int], note: dict[str, Any]
) -> web.StreamResponse:
    """Chat completions or embeddings, by path, on `openapi` or on a deployed endpoint's ID."""
    match = VERTEX_PATH.match(request.path)
    assert match is not None  # classify() said so
    note.update(_where(match["version"], match["project"], match["location"], match["endpoint"]))
    note["operation"] = match["operation"]
    if match["endpoint"] != "openapi":
        deployed = state.find_endpoint(match["project"], match["location"], match["endpoint"])
        if deployed is None:
            # Google checks the caller before it says whether a resource exists.
            caller, refused = authorize(state, request, note=note)
            if refused is not None:
                return refused
            assert caller is not None
            token_id.append(caller.id)
            note["reason"] = "NOT_FOUND"
            return error_response(
                request,
                google_errors.endpoint_not_found(
                    state.project_number(match["project"]), match["location"], match["endpoint"]
                ),
                404,
            )
        note["endpoint_display_name"] = deployed.display_name
        note["deployed_model"] = deployed.model
    if match["operation"] == "embeddings":
        return await embeddings(state, request, token_id, note)
    return await chat(state, request, token_id, note)


def _where(version: str, project: str, location: str, endpoint: str | None) -> dict[str, Any]:
    return {
        "google_host": google_host(location),
        "version": version,
        "project": project,
        "location": location,
        "endpoint": endpoint,
    }


# -- Model Garden, the endpoints list, and the route Vertex does not have ------------------------------------


async def respond_catalog(
    state: EmulatorState, request: web.Request, token_id: list[int], note: dict[str, Any]
) -> web.StreamResponse:
    """The Model Garden catalog, a project's endpoints, or the HTML 404 of `…/endpoints/*/models`."""
    path = request.path
    openai_models = OPENAI_MODELS_PATH.match(path)
    if openai_models is not None:
        note["operation"] = "models"
        note["google_host"] = google_host(openai_models["location"])
        note["reason"] = "NOT_FOUND"
        # GFE answers before any API (and any credential check): no such route.
        return web.Response(
            status=404,
            body=google_errors.not_found_html(path).encode("utf-8"),
            headers={"Content-Type": "text/html; charset=UTF-8"},  # Google's spelling
        )
    if request.method != "GET":
        return web.json_response(google_error(405, "Use GET."), status=405)
    listing = ENDPOINTS_PATH.match(path)
    if listing is not None:
        return _list_endpoints(state, request, token_id, note, listing)
    found = CATALOG_PATH.match(path)
    assert found is not None  # classify() said so
    return _publisher_models(state, request, token_id, note, found)


def _publisher_models(
    state: EmulatorState,
    request: web.Request,
    token_id: list[int],
    note: dict[str, Any],
    match: re.Match[str],
) -> web.StreamResponse:
    version, publisher, model_id = match["version"], match["publisher"], match["model"]
    note.update(version=version, operation="publisher_models", model=model_id)
    note["google_host"] = request.headers.get(ORIGINAL_HOST_HEADER) or None
    name = "GetPublisherModel" if model_id else "ListPublisherModels"
    caller, refused = authorize(
        state, request, f"google.cloud.aiplatform.{version}.ModelGardenService.{name}", note=note
    )
    if refused is not None:
        return refused
    assert caller is not None
    token_id.append(caller.id)
    models = state.catalog() if publisher == "google" else []
    if model_id is not None:
        found = next((m for m in models if m.id == model_id), None)
        if found is None:
            note["reason"] = "NOT_FOUND"
            return web.json_response(
                google_error(
                    404, f"Publisher Model `publishers/{publisher}/models/{model_id}` not found."
                ),
                status=404,
            )
        return web.json_response(found.to_google())
    try:
        chunk, following = catalog.page(
            models,
            request.query,
            listing=f"publishers/{publisher}",
            default_size=catalog.CATALOG_PAGE_SIZE,
            max_size=catalog.CATALOG_MAX_PAGE_SIZE,
        )
    except catalog.PageError as err:
        note["reason"] = "INVALID_ARGUMENT"
        return web.json_response(google_error(400, str(err)), status=400)
    body: dict[str, Any] = {"publisherModels": [m.to_google() for m in chunk]}
    if following:
        body["nextPageToken"] = following
    return web.json_response(body)


def _list_endpoints(
    state: EmulatorState,
    request: web.Request,
    token_id: list[int],
    note: dict[str, Any],
    match: re.Match[str],
) -> web.StreamResponse:
    version, project, location = match["version"], match["project"], match["location"]
    note.update(_where(version, project, location, None))
    note["operation"] = "endpoints"
    caller, refused = authorize(
        state,
        request,
        f"google.cloud.aiplatform.{version}.EndpointService.ListEndpoints",
        project,
        note,
        permission="aiplatform.endpoints.list",
        resource=f"projects/{project}/locations/{location}",
    )
    if refused is not None:
        return refused
    assert caller is not None
    token_id.append(caller.id)
    found = state.endpoints(project, location)
    try:
        chunk, following = catalog.page(
            found,
            request.query,
            listing=f"projects/{state.project_number(project)}/locations/{location}/endpoints",
            default_size=catalog.ENDPOINTS_PAGE_SIZE,
            max_size=catalog.ENDPOINTS_MAX_PAGE_SIZE,
        )
    except catalog.PageError as err:
        note["reason"] = "INVALID_ARGUMENT"
        return web.json_response(google_error(400, str(err)), status=400)
    number = state.project_number(project)
    body: dict[str, Any] = {"endpoints": [e.to_google(number) for e in chunk]}
    if following:
        body["nextPageToken"] = following
    return web.json_response(body)


async def chat(
    state: EmulatorState, request: web.Request, token_id: list[int], note: dict[str, Any]
) -> web.StreamResponse:
    body, refused = await _json_body(state, request, token_id, note)
    if body is None:
        assert refused is not None
        return refused
    reply = state.next_reply()
    if reply is not None and reply.status is not None:
        note["reason"] = "SCRIPTED"
        if reply.body is not None:  # the test's own body, as it wrote it
            return web.json_response(reply.body, status=reply.status)
        return error_response(request, status_error(reply.status), reply.status)
    state.count("chat_ok")
    model = str(body.get("model") or note.get("deployed_model") or "emulated")
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


def _note_model(note: dict[str, Any], raw: str) -> None:
    """The model and streaming of a request, for its record (whatever the answer)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return
    if isinstance(body, dict):
        model = body.get("model")
        note["model"] = model if isinstance(model, str) else None
        note["stream"] = bool(body.get("stream"))


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
    state: EmulatorState, request: web.Request, token_id: list[int], note: dict[str, Any]
) -> web.StreamResponse:
    """OpenAI's embeddings response: one deterministic unit vector per input (float list or base64)."""
    body, refused = await _json_body(state, request, token_id, note)
    if body is None:
        assert refused is not None
        return refused
    inputs = body.get("input")
    if isinstance(inputs, str) or (
        isinstance(inputs, list) and inputs and all(isinstance(i, int) for i in inputs)
    ):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        return error_response(
            request, google_error(400, "input is a string or a non-empty list of strings"), 400
        )
    dimensions = body.get("dimensions", DEFAULT_EMBEDDING_DIMENSIONS)
    if (
        not isinstance(dimensions, int)
        or isinstance(dimensions, bool)
        or not 1 <= dimensions <= _MAX_EMBEDDING_DIMENSIONS
    ):
        return error_response(
            request,
            google_error(400, f"dimensions must be between 1 and {_MAX_EMBEDDING_DIMENSIONS}"),
            400,
        )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        return error_response(request, google_error(400, "encoding_format is float or base64"), 400)
    state.count("chat_ok")
    model = str(body.get("model") or note.get("deployed_model") or "emulated")
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

"""The `/__emulator/` admin API: faults, scripted replies, config, clock, keys, the Model Garden catalog, deployed
endpoints, records and counters.

`GET /__emulator/` lists it; `admin.py` is its client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from vertex_env.emulator.catalog import CatalogModel
from vertex_env.emulator.faults import (
    FAULT_TARGETS,
    OAUTH_ERRORS,
    EmulatorError,
    Fault,
    ScriptedReply,
    optional_float,
)
from vertex_env.emulator.google_errors import REFUSALS, google_error
from vertex_env.emulator.state import EmulatorState

ADMIN_PREFIX = "/__emulator/"


async def stats(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    return web.json_response(state.stats())


async def faults_list(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    return web.json_response({"faults": state.pending_faults()})


async def faults_add(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    async def apply(body: Any) -> Any:
        items = body if isinstance(body, list) else [body]
        return {"faults": state.add_faults(*(Fault.from_json(i) for i in items))}

    return await _admin_call(request, apply)


async def faults_clear(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    state.clear_faults()
    return web.json_response({"faults": []})


async def config_get(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    return web.json_response(state.config.to_json())


async def config(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    async def apply(body: Any) -> Any:
        if not isinstance(body, dict):
            raise EmulatorError("config is a JSON object")
        return state.configure(**body)

    return await _admin_call(request, apply)


async def reply(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    async def apply(body: Any) -> Any:
        for item in body if isinstance(body, list) else [body]:
            state.queue_reply(ScriptedReply.from_json(item))
        return {"replies_pending": state.stats()["replies_pending"]}

    return await _admin_call(request, apply)


async def reply_clear(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    state.clear_replies()
    return web.json_response({"replies_pending": 0})


async def requests(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    kind = request.query.get("kind") or None
    try:
        limit = int(request.query["limit"]) if "limit" in request.query else None
    except ValueError:
        return web.json_response(google_error(400, "limit must be an integer"), status=400)
    return web.json_response(
        {
            "requests": state.requests(kind=kind, limit=limit),
            "chat": state.chat_requests(limit),
            "vertex": state.vertex_requests(limit),
        }
    )


async def tokens(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    return web.json_response({"tokens": state.issued_tokens()})


async def reset(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    state.reset()
    return web.json_response({"reset": True})


async def expire(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    return web.json_response({"expired": state.expire_all()})


async def keys(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    async def apply(body: Any) -> Any:
        if not isinstance(body, dict) or not body.get("email") or not body.get("public_key_pem"):
            raise EmulatorError(
                'keys takes {"email": ..., "public_key_pem": ..., "key_id": optional}'
            )
        state.register_key(str(body["email"]), str(body["public_key_pem"]), body.get("key_id"))
        return {"known_keys": state.known_key_emails()}

    return await _admin_call(request, apply)


async def clock_get(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    return web.json_response(state.clock())


async def clock_advance(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    async def apply(body: Any) -> Any:
        if not isinstance(body, dict) or set(body) != {"advance"}:
            raise EmulatorError('clock takes {"advance": SECONDS}')
        seconds = optional_float(body["advance"], "advance")
        if seconds is None:
            raise EmulatorError('clock takes {"advance": SECONDS}')
        return state.advance_clock(seconds)

    return await _admin_call(request, apply)


async def catalog_list(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    return web.json_response({"models": [m.to_json() for m in state.catalog()]})


async def catalog_put(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    async def apply(body: Any) -> Any:
        for item in body if isinstance(body, list) else [body]:
            state.put_catalog_model(CatalogModel.from_json(item))
        return {"models": [m.to_json() for m in state.catalog()]}

    return await _admin_call(request, apply)


async def catalog_delete(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    async def apply(body: Any) -> Any:
        if body in ({}, None):
            state.reset_catalog()
        elif isinstance(body, dict) and set(body) == {"id"} and isinstance(body["id"], str):
            if not state.remove_catalog_model(body["id"]):
                raise EmulatorError(f"no catalog model {body['id']!r}")
        else:
            raise EmulatorError('DELETE catalog takes {"id": MODEL} (no body: back to the seed)')
        return {"models": [m.to_json() for m in state.catalog()]}

    return await _admin_call(request, apply)


async def endpoints_list(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    return web.json_response({"endpoints": [e.to_json() for e in state.endpoints()]})


async def endpoints_add(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    async def apply(body: Any) -> Any:
        if not isinstance(body, dict):
            raise EmulatorError("an endpoint is a JSON object")
        return state.add_endpoint(body).to_json()

    return await _admin_call(request, apply)


async def endpoints_delete(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    async def apply(body: Any) -> Any:
        if body in ({}, None):
            return {"removed": state.remove_endpoint()}
        if isinstance(body, dict) and set(body) == {"id"}:
            removed = state.remove_endpoint(str(body["id"]))
            if not removed:
                raise EmulatorError(f"no endpoint {body['id']}")
            return {"removed": removed}
        raise EmulatorError('DELETE endpoints takes {"id": ID} (no body: every endpoint)')

    return await _admin_call(request, apply)


def _refusal_table(state: EmulatorState) -> dict[str, Any]:
    return {
        "refusals": state.refusals(),
        "known": {
            name: {
                "status": status,
                "google_status": google_status,
                "reason": reason,
                "keys_on": keys,
            }
            for name, (status, google_status, reason, keys) in REFUSALS.items()
        },
    }


async def refusals_list(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    return web.json_response(_refusal_table(state))


def _refusal_items(body: Any) -> list[tuple[str, str]]:
    items = body if isinstance(body, list) else [body]
    parsed = []
    for item in items:
        if (
            not isinstance(item, dict)
            or set(item) != {"project", "refusal"}
            or not all(isinstance(v, str) for v in item.values())
        ):
            raise EmulatorError('a refusal is {"project": P, "refusal": NAME}')
        parsed.append((item["project"], item["refusal"]))
    return parsed


async def refusals_add(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    async def apply(body: Any) -> Any:
        items = _refusal_items(body)
        for _, name in items:  # every name checked before any is switched on
            if name not in REFUSALS:
                raise EmulatorError(f"refusal is one of {list(REFUSALS)}, not {name!r}")
        for project, name in items:
            state.refuse(project, name)
        return _refusal_table(state)

    return await _admin_call(request, apply)


async def refusals_delete(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    async def apply(body: Any) -> Any:
        if body in ({}, None):
            state.allow()
        elif isinstance(body, dict) and set(body) <= {"project", "refusal"}:
            state.allow(body.get("project"), body.get("refusal"))
        else:
            raise EmulatorError('DELETE refusals takes {"project", "refusal"} (either; none: all)')
        return _refusal_table(state)

    return await _admin_call(request, apply)


async def vertex_requests(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    try:
        limit = int(request.query["limit"]) if "limit" in request.query else None
    except ValueError:
        return web.json_response(google_error(400, "limit must be an integer"), status=400)
    return web.json_response({"vertex": state.vertex_requests(limit)})


async def index(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    """What the admin API serves: one line per route."""
    return web.json_response(
        {
            "admin_api": [
                {"method": method, "path": ADMIN_PREFIX + path, "does": does}
                for method, path, _, does in ROUTES
            ],
            "fault_targets": list(FAULT_TARGETS),
            "fault_errors": sorted(OAUTH_ERRORS),
            "config_keys": sorted(state.config.to_json()),
            "refusals": list(REFUSALS),
        }
    )


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


Handler = Callable[[EmulatorState, web.Request], Awaitable[web.StreamResponse]]

#: (method, path under /__emulator/, handler, what it does) — `GET /__emulator/` lists them.
ROUTES: tuple[tuple[str, str, Handler, str], ...] = (
    ("GET", "", index, "this list"),
    (
        "GET",
        "stats",
        stats,
        "counters: requests per kind, tokens by grant, chat ok/rejected, faults",
    ),
    ("GET", "faults", faults_list, "pending faults"),
    (
        "POST",
        "faults",
        faults_add,
        'queue faults: {"target", "status"|"error"|"delay"|"non_json"|"close", "body", "count"}',
    ),
    ("DELETE", "faults", faults_clear, "drop pending faults"),
    ("GET", "config", config_get, "current config"),
    ("POST", "config", config, "change config keys (see config_keys)"),
    (
        "POST",
        "reply",
        reply,
        'script chat answers: {"text"|"tool_calls"|"status", "body", "repeat"}',
    ),
    ("DELETE", "reply", reply_clear, "drop scripted answers"),
    (
        "GET",
        "requests",
        requests,
        "recent requests and chat bodies (?kind=, ?limit=), secrets masked",
    ),
    (
        "GET",
        "vertex",
        vertex_requests,
        "recent Vertex requests: host, project, location, endpoint, model, x-goog-user-project, "
        "status, refusal reason (?limit=)",
    ),
    (
        "GET",
        "refusals",
        refusals_list,
        "Google's refusals switched on per project, and every known one",
    ),
    (
        "POST",
        "refusals",
        refusals_add,
        'switch a refusal on: {"project", "refusal"} (SERVICE_DISABLED, IAM_PERMISSION_DENIED, …)',
    ),
    (
        "DELETE",
        "refusals",
        refusals_delete,
        'switch refusals off: {"project", "refusal"}, either, or no body for all',
    ),
    ("GET", "catalog", catalog_list, "the Model Garden catalog (publisher google), with locations"),
    (
        "POST",
        "catalog",
        catalog_put,
        'add or replace models: {"id", "locations", "launch_stage", "version_id", "kind", '
        '"open_source_category"}',
    ),
    (
        "DELETE",
        "catalog",
        catalog_delete,
        'remove a model {"id"}; no body: back to the seeded catalog',
    ),
    ("GET", "endpoints", endpoints_list, "deployed (self-deployed model) endpoints"),
    (
        "POST",
        "endpoints",
        endpoints_add,
        'deploy an endpoint: {"display_name", "location", "model", "project", "id" (optional)}',
    ),
    ("DELETE", "endpoints", endpoints_delete, 'undeploy {"id"}; no body: every endpoint'),
    ("GET", "tokens", tokens, "issued tokens (no values): grant, principal, scopes, expiry"),
    ("GET", "clock", clock_get, "the emulator's clock: now and offset"),
    ("POST", "clock", clock_advance, 'move the clock forward: {"advance": SECONDS}'),
    ("POST", "reset", reset, "forget tokens, faults, replies, records, counters, clock moves"),
    ("POST", "expire", expire, "expire every issued token now"),
    (
        "POST",
        "keys",
        keys,
        'verify assertions of a service account: {"email", "public_key_pem", "key_id"}',
    ),
)


def routes(state: EmulatorState) -> list[web.RouteDef]:
    """The admin API's routes over `state`."""

    def bind(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await handler(state, request)

        return handle

    return [
        web.route(method, ADMIN_PREFIX + path, bind(handler)) for method, path, handler, _ in ROUTES
    ]

"""The `/__emulator/` admin API: faults, scripted replies, config, keys, records and counters (`admin.py` is its client)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from vertex_env.emulator.faults import EmulatorError, Fault, ScriptedReply
from vertex_env.emulator.google_errors import google_error
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

#: (method, path under /__emulator/, handler).
ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "stats", stats),
    ("GET", "faults", faults_list),
    ("POST", "faults", faults_add),
    ("DELETE", "faults", faults_clear),
    ("GET", "config", config_get),
    ("POST", "config", config),
    ("POST", "reply", reply),
    ("DELETE", "reply", reply_clear),
    ("GET", "requests", requests),
    ("GET", "tokens", tokens),
    ("POST", "reset", reset),
    ("POST", "expire", expire),
    ("POST", "keys", keys),
)


def routes(state: EmulatorState) -> list[web.RouteDef]:
    """The admin API's routes over `state`."""

    def bind(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await handler(state, request)

        return handle

    return [
        web.route(method, ADMIN_PREFIX + path, bind(handler)) for method, path, handler in ROUTES
    ]

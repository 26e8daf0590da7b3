"""The offline Google + Vertex emulator: routing one aiohttp app to each emulated service, and running it.

It serves, on one port, the paths of every Google endpoint vertex-env's credentials touch (the transport
seam rewrites their hosts to this port): OAuth2 `/token`, STS `/v1/token` and `/v1/oauthtoken` (`oauth.py`),
IAM `generateAccessToken` (`iam.py`), the GCE metadata server (`metadata.py`), and Vertex's OpenAI-compatible
chat completions (`vertex.py`). Tokens are opaque `ya29.emu-` strings with a lifetime (`state.py`). An admin
API under `/__emulator/` (`admin_api.py`) injects faults, scripts replies and reads counters; records never
hold a secret (refresh tokens, assertions, client secrets, access tokens), so tests can print them freely.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from vertex_env.config.routing import ORIGINAL_HOST_HEADER
from vertex_env.emulator import admin_api, iam, metadata, oauth, vertex
from vertex_env.emulator.faults import OAUTH_ERRORS, EmulatorError, Fault, ScriptedReply, drip
from vertex_env.emulator.google_errors import google_error, status_error
from vertex_env.emulator.state import DEFAULT_PROJECT_ID, TOKEN_PREFIX, EmulatorState
from vertex_env.system.loop_thread import LoopThread
from vertex_env.system.loopback import is_loopback

if TYPE_CHECKING:
    from vertex_env.emulator.admin import EmulatorAdmin

__all__ = [
    "TOKEN_PREFIX",
    "EmulatorError",
    "EmulatorServer",
    "EmulatorState",
    "Fault",
    "ScriptedReply",
    "build_app",
    "classify",
    "is_loopback",
    "run",
    "serve_forever",
]


def classify(path: str) -> str:
    """Which emulated service a path belongs to (paths of Google's services never collide)."""
    if path == "/" or path.startswith("/computeMetadata/"):
        return "metadata"
    if (
        path in oauth.OAUTH_TOKEN_PATHS
        or path in oauth.STS_EXCHANGE_PATHS
        or path in oauth.STS_REFRESH_PATHS
    ):
        return "token"
    if iam.IAM_PATH.match(path):
        return "iam"
    if vertex.VERTEX_PATH.match(path):
        return "chat"
    if (
        vertex.CATALOG_PATH.match(path)
        or vertex.ENDPOINTS_PATH.match(path)
        or vertex.OPENAI_MODELS_PATH.match(path)
    ):
        return "catalog"
    return "other"


class EmulatorApp:
    """Routes each request to its service over one EmulatorState, applying injected faults first."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def build(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(admin_api.routes(self.state))
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    # -- the emulated services --------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        kind = classify(path)
        fault = self.state.take_fault(kind)
        token_id: list[int] = []
        # What a Vertex handler learnt about the request (project, location, endpoint, model, refusal reason).
        note: dict[str, Any] = {}
        status: int | None = None
        try:
            response = await self._respond(request, kind, fault, token_id, note)
            status = None if fault is not None and fault.close else response.status
            if fault is not None and fault.drip and isinstance(response, web.Response):
                return await drip(request, response, fault.drip)
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            if kind in ("chat", "catalog"):
                self.state.record_vertex(
                    vertex_record(request, note, status, fault, token_id[0] if token_id else None)
                )
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
        self,
        request: web.Request,
        kind: str,
        fault: Fault | None,
        token_id: list[int],
        note: dict[str, Any],
    ) -> web.StreamResponse:
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            failed = self._fault_response(request, kind, fault)
            if failed is not None:
                return failed
        if kind == "metadata":
            return metadata.respond(self.state, request)
        if kind == "token":
            return await oauth.token(self.state, request)
        if kind == "iam":
            return await iam.generate_access_token(self.state, request, token_id)
        if kind == "chat":
            return await vertex.respond(self.state, request, token_id, note)
        if kind == "catalog":
            return await vertex.respond_catalog(self.state, request, token_id, note)
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
            return web.json_response(fault.body or OAUTH_ERRORS[fault.error], status=400)
        if fault.status is not None:
            if fault.body is not None:
                body = fault.body
            elif kind == "token":
                body = {
                    "error": "server_error" if fault.status >= 500 else "rate_limit_exceeded",
                    "error_description": f"Emulated fault: HTTP {fault.status}",
                }
            elif kind == "chat":
                return vertex.error_response(request, status_error(fault.status), fault.status)
            else:
                body = status_error(fault.status)
            headers = {"Metadata-Flavor": "Google"} if kind == "metadata" else None
            return web.json_response(body, status=fault.status, headers=headers)
        return None


def vertex_record(
    request: web.Request,
    note: dict[str, Any],
    status: int | None,
    fault: Fault | None,
    token_id: int | None,
) -> dict[str, Any]:
    """What the emulator remembers of one Vertex request: where it went and what it asked, never a secret.

    `host` is the Host the client sent (the emulator's own address unless a client says otherwise),
    `original_host` the Google host vertex-env's transport seam rewrote (when it did), and `google_host` the
    host Vertex serves the URL's location on, so a test can tell `global` from a region whatever the route."""
    user_project = request.headers.get(vertex.USER_PROJECT_HEADER, "").strip() or None
    return {
        "time": time.time(),
        "method": request.method,
        "path": request.path,
        "host": request.host,
        "original_host": request.headers.get(ORIGINAL_HOST_HEADER),
        "google_host": note.get("google_host"),
        "version": note.get("version"),
        "project": note.get("project"),
        "location": note.get("location"),
        "endpoint": note.get("endpoint"),
        "endpoint_display_name": note.get("endpoint_display_name"),
        "operation": note.get("operation"),
        "model": note.get("model"),
        "stream": note.get("stream", False),
        "user_project": user_project,
        "status": status,
        "reason": note.get("reason"),
        "fault": fault.name if fault else None,
        "token_id": token_id,
    }


def build_app(state: EmulatorState | None = None) -> web.Application:
    """The aiohttp application serving every emulated endpoint over `state` (a fresh one by default)."""
    return EmulatorApp(state or EmulatorState()).build()


# ---------------------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------------------


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

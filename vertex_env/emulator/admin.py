"""`EmulatorAdmin`: a stdlib (urllib) client of the emulator's `/__emulator/` admin API, for tests and the demo.

It works against an emulator in another process (`vertex-env emulator`), where `EmulatorServer.state` is out
of reach. It never goes through an HTTP proxy: the emulator is on loopback.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Literal, TypedDict, cast

from vertex_env.system.loopback import opener_for

#: The refusals the emulator can switch on per project, in the order Vertex checks them (google_errors.REFUSALS).
Refusal = Literal[
    "USER_PROJECT_DENIED",
    "CONSUMER_INVALID",
    "QUOTA_PROJECT_REQUIRED",
    "SERVICE_DISABLED",
    "BILLING_DISABLED",
    "VPC_SERVICE_CONTROLS",
    "IAM_PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
]


class VertexRequest(TypedDict):
    """One request the emulator received on a Vertex surface (admin `GET vertex`); never a token."""

    id: int
    time: float
    method: str
    path: str
    #: The Host header the client sent (the emulator's own address unless a client set another).
    host: str
    #: The Google host vertex-env's transport seam rewrote to the emulator, when it did.
    original_host: str | None
    #: The host Vertex serves the URL's location on: `aiplatform.googleapis.com` (global) or `{loc}-…`.
    google_host: str | None
    version: str | None
    project: str | None
    location: str | None
    #: `openapi`, a deployed endpoint's ID, or None (catalog, endpoints list).
    endpoint: str | None
    endpoint_display_name: str | None
    #: `chat/completions`, `embeddings`, `publisher_models`, `endpoints` or `models` (the HTML 404).
    operation: str | None
    model: str | None
    stream: bool
    #: The x-goog-user-project header, if sent.
    user_project: str | None
    status: int | None
    #: The ErrorInfo reason (or status name) of a refusal; None when answered.
    reason: str | None
    fault: str | None
    token_id: int | None


class CatalogEntry(TypedDict):
    """One Model Garden model (publisher google) and the locations serving it."""

    id: str
    version_id: str
    launch_stage: str
    open_source_category: str
    kind: Literal["chat", "embedding"]
    #: As configured: `["*"]` for every location, else the list.
    locations: list[str]
    #: Every location serving it, `global` first.
    served_in: list[str]


class DeployedEndpointInfo(TypedDict):
    """A self-deployed endpoint: its numeric ID answers chat completions and embeddings."""

    id: str
    display_name: str
    project: str
    location: str
    model: str
    create_time: float


class EmulatorAdminError(RuntimeError):
    """The admin API refused a request (bad fault, unknown config key) or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class EmulatorAdmin:
    """Drive a running emulator: faults, scripted replies, config, counters and records."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        # The emulator is on loopback: HTTP_PROXY in the environment must not reroute these calls.
        self._opener = opener_for(self.url)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            f"{self.url}/__emulator/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as err:
            with err:
                detail = err.read().decode("utf-8", "replace")
            with contextlib.suppress(ValueError, KeyError, TypeError):
                detail = json.loads(detail)["error"]["message"]
            raise EmulatorAdminError(
                f"{method} /__emulator/{path}: {err.code} {detail}", err.code
            ) from None
        except OSError as err:
            raise EmulatorAdminError(f"emulator at {self.url} unreachable: {err}") from None

    def stats(self) -> dict[str, Any]:
        """Counters: requests per kind, original hosts, tokens issued (by grant), chat ok/rejected, faults."""
        result: dict[str, Any] = self._call("GET", "stats")
        return result

    def fault(self, target: str = "any", **fault: Any) -> list[dict[str, Any]]:
        """Queue one fault, e.g. `fault("token", status=503, count=2)`; returns the pending faults."""
        return self.faults([{"target": target, **fault}])

    def faults(self, faults: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Queue several faults (each `{"target", "status"|"error"|"delay"|"non_json"|"close", "count"}`)."""
        result: list[dict[str, Any]] = self._call("POST", "faults", faults)["faults"]
        return result

    def pending_faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "faults")["faults"]
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def configure(self, **config: Any) -> dict[str, Any]:
        """Change config keys: expires_in, max_lifetime, project_id, service_account_email, scopes,
        require_known_keys, lifetime_extension, denied_projects, disabled_projects, metadata_refresh_before,
        impersonation_denied, invalid_clients."""
        result: dict[str, Any] = self._call("POST", "config", config)
        return result

    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "config")
        return result

    def reply(
        self,
        text: str | None = None,
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        status: int | None = None,
        body: Any = None,
        repeat: bool = False,
    ) -> None:
        """Script the next chat answer (every answer with `repeat=True`): text, tool calls, or an error."""
        payload = {
            "text": text,
            "tool_calls": tool_calls,
            "status": status,
            "body": body,
            "repeat": repeat,
        }
        self._call("POST", "reply", {k: v for k, v in payload.items() if v is not None})

    def clear_replies(self) -> None:
        self._call("DELETE", "reply")

    def requests(self, kind: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """`{"requests": [...], "chat": [...], "vertex": [...]}`: recent requests, chat bodies/headers and Vertex
        requests (see `vertex_requests`), secrets masked."""
        query = urllib.parse.urlencode(
            {name: value for name, value in (("kind", kind), ("limit", limit)) if value is not None}
        )
        result: dict[str, Any] = self._call("GET", "requests" + (f"?{query}" if query else ""))
        return result

    def refuse(self, project: str, refusal: Refusal) -> dict[str, list[str]]:
        """Make Vertex refuse `project` the way Google does (e.g. `refuse("p", "SERVICE_DISABLED")`) until
        `allow`; returns project -> refusals switched on. See docs/emulator.md."""
        body = {"project": project, "refusal": refusal}
        return cast("dict[str, list[str]]", self._call("POST", "refusals", body)["refusals"])

    def allow(
        self, project: str | None = None, refusal: Refusal | None = None
    ) -> dict[str, list[str]]:
        """Switch refusals off: one of a project, every one of a project, or (no arguments) all."""
        body = {k: v for k, v in (("project", project), ("refusal", refusal)) if v is not None}
        return cast(
            "dict[str, list[str]]", self._call("DELETE", "refusals", body or None)["refusals"]
        )

    def refusals(self) -> dict[str, list[str]]:
        """project -> the refusals switched on for it."""
        return cast("dict[str, list[str]]", self._call("GET", "refusals")["refusals"])

    def vertex_requests(self, limit: int | None = None) -> list[VertexRequest]:
        """Recent requests to Vertex surfaces, oldest first: host, project, location, endpoint, model,
        x-goog-user-project, status and refusal reason (never a token)."""
        query = f"?limit={int(limit)}" if limit is not None else ""
        return cast("list[VertexRequest]", self._call("GET", "vertex" + query)["vertex"])

    def catalog(self) -> list[CatalogEntry]:
        """The Model Garden catalog the emulator serves (publisher google), with where each model is served."""
        return cast("list[CatalogEntry]", self._call("GET", "catalog")["models"])

    def put_model(
        self,
        model_id: str,
        *,
        locations: str | list[str] = "*",
        launch_stage: str = "GA",
        version_id: str = "001",
        kind: Literal["chat", "embedding"] = "chat",
        open_source_category: str = "PROPRIETARY",
    ) -> list[CatalogEntry]:
        """Add `model_id` (no `google/` prefix) to the catalog, or replace it; `locations` "*" is everywhere.
        Returns the catalog."""
        body = {
            "id": model_id,
            "locations": locations,
            "launch_stage": launch_stage,
            "version_id": version_id,
            "kind": kind,
            "open_source_category": open_source_category,
        }
        return cast("list[CatalogEntry]", self._call("POST", "catalog", body)["models"])

    def remove_model(self, model_id: str) -> list[CatalogEntry]:
        """Take `model_id` out of the catalog (a chat naming it then gets Google's 404)."""
        return cast(
            "list[CatalogEntry]", self._call("DELETE", "catalog", {"id": model_id})["models"]
        )

    def reset_catalog(self) -> list[CatalogEntry]:
        """Back to the seeded catalog."""
        return cast("list[CatalogEntry]", self._call("DELETE", "catalog")["models"])

    def endpoints(self) -> list[DeployedEndpointInfo]:
        """The deployed (self-deployed model) endpoints."""
        return cast("list[DeployedEndpointInfo]", self._call("GET", "endpoints")["endpoints"])

    def deploy_endpoint(
        self,
        display_name: str,
        *,
        location: str,
        model: str,
        project: str | None = None,
        endpoint_id: str | None = None,
    ) -> DeployedEndpointInfo:
        """Create an endpoint serving `model` in `location` (a region) of `project` (default: the emulator's
        project_id); Vertex-shaped numeric ID unless `endpoint_id` is given."""
        body: dict[str, Any] = {"display_name": display_name, "location": location, "model": model}
        if project is not None:
            body["project"] = project
        if endpoint_id is not None:
            body["id"] = endpoint_id
        return cast("DeployedEndpointInfo", self._call("POST", "endpoints", body))

    def undeploy_endpoint(self, endpoint_id: str | None = None) -> int:
        """Remove one endpoint, or every one; returns how many went."""
        body = {"id": endpoint_id} if endpoint_id is not None else None
        return int(self._call("DELETE", "endpoints", body)["removed"])

    def tokens(self) -> list[dict[str, Any]]:
        """What the emulator knows of each token it issued (id, grant, principal, scopes, expiry) — no values."""
        result: list[dict[str, Any]] = self._call("GET", "tokens")["tokens"]
        return result

    def reset(self) -> None:
        """Forget tokens, faults, replies, records, counters and clock moves (config and keys stay)."""
        self._call("POST", "reset", {})

    def expire(self) -> int:
        """Expire every issued token now; returns how many were live."""
        result: int = self._call("POST", "expire", {})["expired"]
        return result

    def index(self) -> dict[str, Any]:
        """What the admin API serves (`GET /__emulator/`): routes, fault targets and errors, config keys."""
        result: dict[str, Any] = self._call("GET", "")
        return result

    def clock(self) -> dict[str, float]:
        """The emulator's clock: `{"now", "offset"}`."""
        result: dict[str, float] = self._call("GET", "clock")
        return result

    def advance_clock(self, seconds: float) -> dict[str, float]:
        """Move the emulator's clock forward: its tokens age and expire without waiting."""
        result: dict[str, float] = self._call("POST", "clock", {"advance": seconds})
        return result

    def register_key(
        self, email: str, public_key_pem: str | bytes, key_id: str | None = None
    ) -> None:
        """Verify JWT-bearer assertions of `email` against this public key PEM."""
        pem = (
            public_key_pem.decode("ascii") if isinstance(public_key_pem, bytes) else public_key_pem
        )
        body: dict[str, Any] = {"email": email, "public_key_pem": pem}
        if key_id is not None:
            body["key_id"] = key_id
        self._call("POST", "keys", body)

    def __repr__(self) -> str:
        return f"EmulatorAdmin({self.url!r})"

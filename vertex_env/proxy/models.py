"""The proxy's model directory: `GET /models` answered locally, and where a request naming a model goes.

Vertex's OpenAI-compatible endpoint has no `/models` route (it answers a 404 HTML page), yet apps ask it to fill
their model picker or to test a provider. The proxy answers `GET /models` and `GET /models/{id}` itself, in
OpenAI's shape, from the union of:

- the profile's configured models (`[profiles.NAME.models]`, vertex_env.config.models);
- Google's Model Garden catalog for publisher `google` (`GET /v1beta1/publishers/google/models`, every page),
  as `google/<model>`: the ids Vertex's chat completions take;
- the self-deployed endpoints of the profile's location (`GET /v1/projects/P/locations/L/endpoints`, every
  page), by display name.

The two lists from Google are cached (`models_ttl`, an hour by default) and refreshed in the background once
stale; when Google fails, the last good copy is served and one line is logged. A client waits at most
`timeout` for the first copy, then gets what is known. `models_only` keeps the list to the configured models and
asks Google nothing.

Routing: a request to `/chat/completions`, `/completions` or `/embeddings` whose JSON `model` is a configured
model, or the display name of a self-deployed endpoint found in the list, goes to that model's base URL (its
location's host and its endpoint); any other goes to the profile's base URL. The body is never changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from vertex_env.config.routing import ORIGINAL_HOST_HEADER

if TYPE_CHECKING:
    from vertex_env.environment import Environment

__all__ = ["ROUTED_SUFFIXES", "UPSTREAM_KEY", "ModelDirectory", "Upstream", "model_of"]

log = logging.getLogger("vertex_env.proxy.models")

#: The OpenAI routes whose JSON body's `model` chooses where the request goes.
ROUTED_SUFFIXES = frozenset({"/chat/completions", "/completions", "/embeddings"})
#: After a failed refresh, how long before a request may start another one.
RETRY_AFTER = 30.0
#: At most this many pages of one list are read (a loop guard: Google's lists end far sooner).
MAX_PAGES = 100
_PLACE = re.compile(r"/locations/(?P<location>[^/]+)/endpoints/(?P<endpoint>[^/]+)$")

#: GET a Google JSON resource: (url, the Google host it is meant for) → the parsed body; raises on failure.
Fetch = Callable[[str, str], Awaitable[dict[str, Any]]]


class Upstream:
    """Where requests go: a Vertex base URL (`…/locations/L/endpoints/E`), its location and endpoint."""

    __slots__ = ("base", "endpoint", "location")

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        found = _PLACE.search(urlsplit(self.base).path)
        self.location = found["location"] if found else ""
        self.endpoint = found["endpoint"] if found else ""

    def __repr__(self) -> str:
        return f"Upstream({self.base!r})"


#: Where a request was sent (its Upstream), kept in the aiohttp request for the JSON log: a RequestKey where
#: aiohttp has them (3.13+; a text key makes it warn), else text.
UPSTREAM_KEY: Any
try:
    from aiohttp.web import RequestKey
except ImportError:  # pragma: no cover - aiohttp before 3.13
    UPSTREAM_KEY = "vertex_env.upstream"
else:
    UPSTREAM_KEY = RequestKey("vertex_env.upstream", Upstream)


def model_of(body: bytes) -> str | None:
    """The top-level `model` of a JSON object body, or None (not JSON, not an object, no text model)."""
    if not body or body[:1] not in (b"{", b" ", b"\n", b"\r", b"\t"):
        return None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) else None


def _epoch(rfc3339: object) -> int:
    """Seconds since the epoch of Google's `createTime` (`2026-01-02T03:04:05.123456789Z`), 0 if unreadable."""
    if not isinstance(rfc3339, str):
        return 0
    # Python 3.10's fromisoformat takes no "Z" and exactly 3 or 6 fraction digits; Google sends up to 9.
    text = re.sub(
        r"\.(\d+)", lambda m: "." + m[1][:6].ljust(6, "0"), rfc3339.strip().replace("Z", "+00:00")
    )
    try:
        return int(datetime.datetime.fromisoformat(text).timestamp())
    except ValueError:
        return 0


def _entry(model_id: str, owned_by: str, created: int = 0) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


class _Copy:
    """One list from Google as last fetched: its entries and when."""

    __slots__ = ("at", "entries")

    def __init__(self, entries: list[dict[str, Any]], at: float) -> None:
        self.entries = entries
        self.at = at


class ModelDirectory:
    """Configured models, Google's catalog and the location's endpoints: the /models answer and the routes.

    `fetch` is given by the proxy (its HTTP session, the token, the quota-project header); None means nothing is
    fetched (a proxy without a profile)."""

    def __init__(
        self,
        *,
        default: Upstream,
        configured: Mapping[str, Upstream] | None = None,
        catalog_url: str | None = None,
        endpoints_url: str | None = None,
        endpoint_base: Callable[[str], str] | None = None,
        project: str = "",
        only: bool = False,
        ttl: float = 3600.0,
        timeout: float = 10.0,
        google_host: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default = default
        self.configured: dict[str, Upstream] = dict(configured or {})
        self.catalog_url = None if only else catalog_url
        self.endpoints_url = None if only else endpoints_url
        self.endpoint_base = endpoint_base
        self.project = project
        self.only = only
        self.ttl = ttl
        self.timeout = timeout
        self.google_host = google_host
        self.clock = clock
        self.fetch: Fetch | None = None
        self.warn: Callable[[str, str], None] = lambda kind, message: log.warning("%s", message)
        self._catalog: _Copy | None = None
        self._endpoints: _Copy | None = None
        #: display name → where it is served, from the last good endpoints list.
        self._deployed: dict[str, Upstream] = {}
        self._task: asyncio.Task[None] | None = None
        self._failed_at: float | None = None
        self._started = int(time.time())

    @classmethod
    def for_environment(cls, env: Environment, timeout: float | None = None) -> ModelDirectory:
        """The directory of `env`'s profile: its models table, its location's catalog and endpoints."""
        from vertex_env.config.profile import host_for, place_base_url
        from vertex_env.config.routing import emulator_host

        profile = env.profile
        emulator = emulator_host(env.environ)
        google = host_for(profile.replace(host=None))
        root = f"http://{emulator}" if emulator else f"https://{host_for(profile)}"
        project = profile.require_project()
        configured = {
            place.model: Upstream(
                place_base_url(
                    profile, place.location or profile.location, place.endpoint, emulator
                )
            )
            for place in profile.models
        }
        return cls(
            default=Upstream(env.base_url),
            configured=configured,
            catalog_url=f"{root}/v1beta1/publishers/google/models",
            endpoints_url=f"{root}/v1/projects/{project}/locations/{profile.location}/endpoints",
            endpoint_base=lambda endpoint_id: place_base_url(
                profile, profile.location, endpoint_id, emulator
            ),
            project=project,
            only=profile.models_only,
            ttl=profile.models_ttl,
            timeout=profile.timeout if timeout is None else timeout,
            google_host=google,
        )

    # -- routing -------------------------------------------------------------------------------------------

    @property
    def routing(self) -> bool:
        """Whether any model goes elsewhere than the default base (else the body need not be read)."""
        return bool(self.configured or self._deployed)

    def route(self, model: str | None) -> Upstream:
        """Where a request naming `model` goes."""
        if model is None:
            return self.default
        return self.configured.get(model) or self._deployed.get(model) or self.default

    # -- the list ----------------------------------------------------------------------------------------

    def prime(self) -> None:
        """Start fetching the lists now (serve's start), without waiting for them."""
        if self.fetch is not None and not self.only:
            self._refresh_soon()

    async def models(self) -> list[dict[str, Any]]:
        """The /models list: configured, then catalog, then endpoints, each id once."""
        await self._current()
        seen: set[str] = set()
        data: list[dict[str, Any]] = []

        def add(entries: Iterable[dict[str, Any]]) -> None:
            for entry in entries:
                if entry["id"] not in seen:
                    seen.add(entry["id"])
                    data.append(entry)

        add(
            _entry(model, "google" if model.startswith("google/") else self.project, self._started)
            for model in self.configured
        )
        for copy in (self._catalog, self._endpoints):
            if copy is not None:
                add(copy.entries)
        return data

    async def model(self, model_id: str) -> dict[str, Any] | None:
        for entry in await self.models():
            if entry["id"] == model_id:
                return entry
        return None

    async def _current(self) -> None:
        if self.fetch is None or self.only:
            return
        now = self.clock()
        stale = [c for c in (self._catalog, self._endpoints) if c is None or now - c.at >= self.ttl]
        if stale:
            self._refresh_soon()
        task = self._task
        if (self._catalog is None or self._endpoints is None) and task is not None:
            # No copy yet: wait for the first one, never longer than the timeout.
            with contextlib.suppress(
                asyncio.TimeoutError, Exception
            ):  # a failure is logged by _refresh
                await asyncio.wait_for(asyncio.shield(task), self.timeout)

    def _refresh_soon(self) -> None:
        if self._task is not None and not self._task.done():
            return
        if self._failed_at is not None and self.clock() - self._failed_at < RETRY_AFTER:
            return
        self._task = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        assert self.fetch is not None
        failed = False
        jobs = {}
        now = self.clock()

        def due(
            copy: _Copy | None,
        ) -> bool:  # missing or stale: a good copy is not fetched again early
            return copy is None or now - copy.at >= self.ttl

        if self.catalog_url is not None and due(self._catalog):
            jobs["catalog"] = self._catalog_entries()
        if self.endpoints_url is not None and due(self._endpoints):
            jobs["endpoints"] = self._endpoint_entries()
        results = await asyncio.gather(*jobs.values(), return_exceptions=True)
        now = self.clock()
        for name, result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException):
                failed = True
                if isinstance(result, asyncio.CancelledError):
                    raise result
                kept = getattr(self, f"_{name}")
                since = (
                    f"serving the copy from {int((now - kept.at) // 60)} min ago"
                    if kept is not None
                    else "it is left out of /models until it can be fetched"
                )
                what = "Model Garden catalog" if name == "catalog" else "endpoints list"
                self.warn(
                    f"models-{name}",
                    f"could not fetch Google's {what} for /models: {_reason(result)}; {since}",
                )
                continue
            entries, deployed = result
            setattr(self, f"_{name}", _Copy(entries, now))
            if name == "endpoints":
                self._deployed = deployed
        self._failed_at = now if failed else None

    async def _pages(self, url: str, field: str) -> list[dict[str, Any]]:
        assert self.fetch is not None
        items: list[dict[str, Any]] = []
        token = ""
        for _ in range(MAX_PAGES):
            page = await self.fetch(
                url + (f"?pageToken={quote(token, safe='')}" if token else ""), self.google_host
            )
            found = page.get(field, [])
            if isinstance(found, list):
                items.extend(item for item in found if isinstance(item, dict))
            token = page.get("nextPageToken") or ""
            if not isinstance(token, str) or not token:
                break
        return items

    async def _catalog_entries(self) -> tuple[list[dict[str, Any]], dict[str, Upstream]]:
        assert self.catalog_url is not None
        entries = []
        for model in await self._pages(self.catalog_url, "publisherModels"):
            name = model.get("name")
            if isinstance(name, str) and name.startswith("publishers/"):
                # publishers/google/models/gemini-2.5-flash → google/gemini-2.5-flash
                parts = name.split("/")
                if len(parts) == 4 and parts[2] == "models" and parts[3]:
                    entries.append(_entry(f"{parts[1]}/{parts[3]}", parts[1]))
        return entries, {}

    async def _endpoint_entries(self) -> tuple[list[dict[str, Any]], dict[str, Upstream]]:
        assert self.endpoints_url is not None
        entries: list[dict[str, Any]] = []
        deployed: dict[str, Upstream] = {}
        for endpoint in await self._pages(self.endpoints_url, "endpoints"):
            name, display = endpoint.get("name"), endpoint.get("displayName")
            if not isinstance(name, str) or not isinstance(display, str) or not display:
                continue
            endpoint_id = name.rsplit("/", 1)[-1]
            if not endpoint_id.isdigit() or display in deployed:
                continue
            if self.endpoint_base is not None:
                deployed[display] = Upstream(self.endpoint_base(endpoint_id))
            entries.append(_entry(display, self.project, _epoch(endpoint.get("createTime"))))
        return entries, deployed

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class GoogleListError(Exception):
    """Google answered a list request with an error: its status and message (never a token)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if message else f"HTTP {status}")
        self.status = status


def _reason(err: BaseException) -> str:
    if isinstance(err, GoogleListError):
        return str(err)
    if isinstance(err, asyncio.TimeoutError):
        return "timed out"
    return type(err).__name__


def google_message(status: int, body: bytes) -> GoogleListError:
    """The error to raise for Google's answer `body` with `status`: its `error.message`, shortened."""
    message = ""
    try:
        data = json.loads(body)
        if isinstance(data, list) and data:
            data = data[0]
        found = data.get("error", {}).get("message") if isinstance(data, dict) else None
        if isinstance(found, str):
            message = found
    except (ValueError, UnicodeDecodeError, AttributeError):
        pass
    message = " ".join(message.split())
    if len(message) > 200:
        message = message[:197] + "..."
    return GoogleListError(status, message)


def original_host_headers(url: str, google_host: str) -> dict[str, str]:
    """The header telling the emulator which Google host a rerouted request was meant for (loopback only)."""
    host = urlsplit(url).hostname or ""
    if host in ("127.0.0.1", "::1", "localhost") and google_host:
        return {ORIGINAL_HOST_HEADER: google_host}
    return {}


def model_id_from(suffix: str) -> str:
    """The model id of `/models/{id}` (an SDK percent-encodes the `/` of `google/…`)."""
    return unquote(suffix[len("/models/") :])

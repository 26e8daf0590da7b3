"""What the operator sees when Vertex refuses a request the proxy forwarded: the client gets Google's answer
untouched; the proxy logs one rate-limited line with the reason and the fix from the table of refusals
(vertex_env.core.refusal_table), tells its observer the reason (`upstream_reason` in serve's JSON log), records
the refusal for `status`, and drops a token Google refused (401) from the shared cache so the next `export`
or `run` mints instead of handing it out again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from vertex_env.core.refusal_table import (
    Advice,
    Principal,
    advise,
    principal_of,
    read_answer,
    situation_for,
)
from vertex_env.errors import VertexEnvError
from vertex_env.proxy.models import model_of

if TYPE_CHECKING:
    from aiohttp import web

    from vertex_env.core.source import HeldToken

__all__ = ["MAX_KEPT", "UpstreamRefusals"]

log = logging.getLogger(__name__)

_NAMED = ("projects", "locations")
#: Bytes of a refusal's body kept to read it (Google's refusals are a few KiB; the rest still reaches the client).
MAX_KEPT = 64 * 1024
#: One line per kind of refusal at most this often (a busy app hitting quota must not flood the log).
LOG_INTERVAL = 60.0


class UpstreamRefusals:
    """The proxy's reader of Vertex's refusals, for one upstream base URL and one held token."""

    def __init__(self, upstream: str, quota_project: str | None, tokens: HeldToken) -> None:
        self.upstream = upstream
        self.quota_project = quota_project
        self.tokens = tokens
        self._principal: Principal | None = None
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def _who(self) -> Principal | None:
        """The principal the proxy's tokens act as (read once from the credential; None if it cannot be)."""
        if self._principal is None:
            try:
                source = self.tokens.source.source
                info = source.info() if source.kind != "metadata" else None
                impersonate = self.tokens.source.profile.impersonate
                principal = principal_of(source.credential_type, info, impersonate=impersonate)
            except (VertexEnvError, AttributeError):
                return None
            held = self.tokens.fresh()
            if source.kind == "metadata" and held is not None and "@" in (held.principal or ""):
                principal = Principal("serviceAccount", held.principal)
            self._principal = principal
        return self._principal

    async def note(
        self,
        request: web.BaseRequest,
        status: int,
        body: bytes,
        request_body: bytes,
        token: str,
        events: Any,
        upstream: str | None = None,
    ) -> None:
        """Vertex answered `status` with `body` (already on its way to the client, untouched); `upstream` is
        the base URL the request went to when a model's route chose another than the proxy's."""
        answer = read_answer(status, body)
        parts = (
            urlsplit(upstream or self.upstream).path.strip("/").split("/")
        )  # v1/projects/P/locations/L/…
        named = {name: value for name, value in itertools.pairwise(parts) if name in _NAMED}
        situation = situation_for(
            project=named.get("projects"),
            location=named.get("locations"),
            quota_project=self.quota_project,
            principal=self._who(),
            model=model_of(request_body),
            sent_quota_header=bool(self.quota_project),
        )
        advice = advise(answer, situation)
        reason = answer.key
        events.upstream_refused(request, reason)
        self._log(request, status, reason, advice)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, _record, self.tokens.source, status, advice.key)
        if status == 401:
            # Refused even after the one retry: the next export or run must mint, not serve it again.
            await loop.run_in_executor(None, self.tokens.invalidate, token)

    def _log(self, request: web.BaseRequest, status: int, reason: str, advice: Advice) -> None:
        kind = f"{status}:{advice.key}"
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < LOG_INTERVAL:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return
        self._last[kind] = now
        skipped = self._skipped.pop(kind, 0)
        more = f" ({skipped} more since the last such line)" if skipped else ""
        route = request.path.rsplit("/", 2)
        what = "/".join(route[-2:]) if route[-2] == "chat" else route[-1]
        log.warning(
            "Vertex refused %s …/%s: HTTP %s %s: %s%s",
            request.method,
            what,
            status,
            reason,
            advice.line(),
            more,
            extra={
                "event": "upstream_refused",
                "fields": {
                    "status": status,
                    "upstream_reason": reason,
                    "fix": list(advice.fixes),
                },
            },
        )


def _record(source: Any, status: int, key: str) -> None:
    """Leave the refusal where `status` finds it (the token source's cache, beside its token)."""
    note = getattr(source, "note_refusal", None)
    if note is not None:
        note(status, key)

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
from typing import Any


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
        # An explicit empty ProxyHandler: HTTP_PROXY in the environment must not reroute loopback calls.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

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
        require_known_keys, lifetime_extension, denied_projects, disabled_projects, metadata_refresh_before."""
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
        """`{"requests": [...], "chat": [...]}`: recent requests and chat bodies/headers, secrets masked."""
        query = urllib.parse.urlencode(
            {name: value for name, value in (("kind", kind), ("limit", limit)) if value is not None}
        )
        result: dict[str, Any] = self._call("GET", "requests" + (f"?{query}" if query else ""))
        return result

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

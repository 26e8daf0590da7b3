"""The emulator's memory: configuration, issued tokens, registered keys, faults, scripted replies and records.

Shared by the server thread and in-process tests; every `EmulatorState` method takes its lock.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import math
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

from vertex_env.config.values import CLOUD_PLATFORM_SCOPE
from vertex_env.emulator.catalog import (
    SEED_CATALOG,
    CatalogModel,
    DeployedEndpoint,
    project_number,
)
from vertex_env.emulator.faults import (
    KINDS,
    EmulatorError,
    Fault,
    ScriptedReply,
    optional_int,
)
from vertex_env.emulator.google_errors import REFUSALS

TOKEN_PREFIX = "ya29.emu-"
DEFAULT_PROJECT_ID = "emulated-project"
DEFAULT_SERVICE_ACCOUNT = "default@emulated-project.iam.gserviceaccount.com"
#: The default project's number (the metadata server's numeric-project-id).
DEFAULT_PROJECT_NUMBER = "123456789012"

_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-goog-api-key", "api-key", "x-api-key"}
)
_CONFIG_KEYS = (
    "expires_in",
    "max_lifetime",
    "project_id",
    "service_account_email",
    "scopes",
    "require_known_keys",
    "lifetime_extension",
    "denied_projects",
    "disabled_projects",
    "metadata_refresh_before",
    "impersonation_denied",
    "invalid_clients",
)
#: The longest generateAccessToken lifetime without the org policy below (Google's default).
DEFAULT_MAX_LIFETIME = 3600
LIFETIME_EXTENSION_POLICY = "iam.allowServiceAccountCredentialLifetimeExtension"


@dataclasses.dataclass
class IssuedToken:
    """What the emulator remembers about an access token it minted (the value itself is the dict key)."""

    id: int
    grant: str
    principal: str
    scopes: tuple[str, ...]
    issued_at: float
    expires_at: float

    def live(self, now: float) -> bool:
        return now < self.expires_at

    @property
    def expires_in(self) -> int:
        """The lifetime it was issued with, in whole seconds (what a token response says)."""
        return max(0, round(self.expires_at - self.issued_at))

    def describe(self, now: float) -> dict[str, Any]:
        """A record safe to show: everything but the token value."""
        return {
            "id": self.id,
            "grant": self.grant,
            "principal": self.principal,
            "scopes": list(self.scopes),
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "expired": not self.live(now),
        }


@dataclasses.dataclass
class EmulatorConfig:
    expires_in: int = 3600
    max_lifetime: int = 43200
    project_id: str = DEFAULT_PROJECT_ID
    service_account_email: str = DEFAULT_SERVICE_ACCOUNT
    scopes: tuple[str, ...] = (CLOUD_PLATFORM_SCOPE,)
    #: Refuse JWT-bearer assertions from service accounts with no registered key, as Google refuses a key it
    #: never issued (off: accept an assertion of an unknown account unverified).
    require_known_keys: bool = True
    #: Service accounts the org policy iam.allowServiceAccountCredentialLifetimeExtension lists ("*": all):
    #: only they get generateAccessToken lifetimes above 3600 s (up to max_lifetime).
    lifetime_extension: tuple[str, ...] = ()
    #: Projects no principal may name in x-goog-user-project (Vertex answers 403 USER_PROJECT_DENIED).
    denied_projects: tuple[str, ...] = ()
    #: Projects where the Vertex AI API is disabled (Vertex answers 403 SERVICE_DISABLED).
    disabled_projects: tuple[str, ...] = ()
    #: The metadata server hands back its cached token until fewer than this many seconds remain.
    metadata_refresh_before: int = 300
    #: Service accounts no caller may impersonate ("*": every one): IAM generateAccessToken answers 403
    #: IAM_PERMISSION_DENIED (the caller lacks roles/iam.serviceAccountTokenCreator).
    impersonation_denied: tuple[str, ...] = ()
    #: OAuth client ids the token endpoint does not know ("*": every one): 401 invalid_client.
    invalid_clients: tuple[str, ...] = ()

    def lifetime_limit(self, email: str) -> int:
        """The longest generateAccessToken lifetime `email` may ask for under the org policy."""
        allowed = "*" in self.lifetime_extension or email in self.lifetime_extension
        return self.max_lifetime if allowed else min(DEFAULT_MAX_LIFETIME, self.max_lifetime)

    def update(self, values: Mapping[str, Any]) -> None:
        unknown = set(values) - set(_CONFIG_KEYS)
        if unknown:
            raise EmulatorError(
                f"unknown config keys: {sorted(unknown)}; known: {list(_CONFIG_KEYS)}"
            )
        for key, value in values.items():
            if key in ("expires_in", "max_lifetime"):
                number = optional_int(value, key)
                if number is None or number < 1:
                    raise EmulatorError(f"{key} must be a positive number of seconds")
                setattr(self, key, number)
            elif key == "scopes":
                if isinstance(value, str):
                    value = value.replace(",", " ").split()
                if not isinstance(value, (list, tuple)) or not value:
                    raise EmulatorError("scopes is a non-empty list")
                self.scopes = tuple(str(s) for s in value)
            elif key == "require_known_keys":
                self.require_known_keys = bool(value)
            elif key == "metadata_refresh_before":
                number = optional_int(value, key)
                if number is None or number < 0:
                    raise EmulatorError(f"{key} is a number of seconds (0 or more)")
                self.metadata_refresh_before = number
            elif key in (
                "lifetime_extension",
                "denied_projects",
                "disabled_projects",
                "impersonation_denied",
                "invalid_clients",
            ):
                setattr(self, key, _names(key, value))
            else:
                if not isinstance(value, str) or not value:
                    raise EmulatorError(f"{key} is a non-empty string")
                setattr(self, key, value)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data


def _names(key: str, value: Any) -> tuple[str, ...]:
    """A list of names from a list, a comma/space separated string, or (lifetime_extension) a boolean."""
    if isinstance(value, bool) and key == "lifetime_extension":
        return ("*",) if value else ()
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise EmulatorError(f"{key} is a list of names")
    return tuple(value)


class EmulatorState:
    """Tokens, keys, faults, scripted replies and counters, shared by the server thread and in-process tests.

    Every method takes the lock, so tests may call them from their own thread while the server runs.
    """

    def __init__(
        self,
        *,
        expires_in: int = 3600,
        max_lifetime: int = 43200,
        project_id: str = DEFAULT_PROJECT_ID,
        service_account_email: str = DEFAULT_SERVICE_ACCOUNT,
        scopes: tuple[str, ...] | list[str] = (CLOUD_PLATFORM_SCOPE,),
        require_known_keys: bool = True,
        lifetime_extension: bool | list[str] | tuple[str, ...] = (),
        denied_projects: list[str] | tuple[str, ...] = (),
        disabled_projects: list[str] | tuple[str, ...] = (),
        metadata_refresh_before: int = 300,
        impersonation_denied: list[str] | tuple[str, ...] = (),
        invalid_clients: list[str] | tuple[str, ...] = (),
        public_keys: Mapping[str, str | bytes] | None = None,
        history: int = 500,
    ) -> None:
        self._lock = threading.RLock()
        self.config = EmulatorConfig()
        self.config.update(
            {
                "expires_in": expires_in,
                "max_lifetime": max_lifetime,
                "project_id": project_id,
                "service_account_email": service_account_email,
                "scopes": list(scopes),
                "require_known_keys": require_known_keys,
                "lifetime_extension": lifetime_extension,
                "denied_projects": list(denied_projects),
                "disabled_projects": list(disabled_projects),
                "metadata_refresh_before": metadata_refresh_before,
                "impersonation_denied": list(impersonation_denied),
                "invalid_clients": list(invalid_clients),
            }
        )
        self._history = history
        self._token_ids = itertools.count(1)
        self._request_ids = itertools.count(1)
        self._tokens: dict[str, IssuedToken] = {}
        # scopes -> the metadata server's current token value
        self._metadata_tokens: dict[tuple[str, ...], str] = {}
        self._clock_offset = 0.0
        # email -> {key id or "" -> PEM}
        self._keys: dict[str, dict[str, str]] = {}
        self._faults: list[Fault] = []
        self._replies: collections.deque[ScriptedReply] = collections.deque()
        self._sticky_reply: ScriptedReply | None = None
        self._records: collections.deque[dict[str, Any]] = collections.deque(maxlen=history)
        self._chat_records: collections.deque[dict[str, Any]] = collections.deque(maxlen=100)
        self._vertex_records: collections.deque[dict[str, Any]] = collections.deque(maxlen=history)
        self._catalog: dict[str, CatalogModel] = {m.id: m for m in SEED_CATALOG}
        self._endpoints: dict[str, DeployedEndpoint] = {}
        # project -> the refusals switched on for it (google_errors.REFUSALS)
        self._refusals: dict[str, set[str]] = {}
        self._counters: collections.Counter[str] = collections.Counter()
        self._original_hosts: collections.Counter[str] = collections.Counter()
        self._grants: collections.Counter[str] = collections.Counter()
        for email, pem in (public_keys or {}).items():
            self.register_key(email, pem)

    # -- configuration -------------------------------------------------------------------------------

    def configure(self, **values: Any) -> dict[str, Any]:
        """Change config keys (see EmulatorConfig); every value is validated before any changes."""
        with self._lock:
            trial = dataclasses.replace(self.config)
            trial.update(values)  # validate everything before changing anything
            self.config = trial
            return self.config.to_json()

    def register_key(
        self, email: str, public_key_pem: str | bytes, key_id: str | None = None
    ) -> None:
        """Verify JWT-bearer assertions from `email` against this public key (PEM, or an X.509 cert PEM)."""
        pem = (
            public_key_pem.decode("ascii") if isinstance(public_key_pem, bytes) else public_key_pem
        )
        rsa_verifier(pem)  # refuse what cannot verify anything
        with self._lock:
            self._keys.setdefault(email, {})[key_id or ""] = pem

    def public_keys(self, email: str) -> dict[str, str]:
        """The public key PEMs registered for `email`, by key id ("" for a key registered without one)."""
        with self._lock:
            return dict(self._keys.get(email, {}))

    def known_key_emails(self) -> list[str]:
        with self._lock:
            return sorted(self._keys)

    # -- faults and replies ----------------------------------------------------------------------------

    def add_faults(self, *faults: Fault | Mapping[str, Any]) -> list[dict[str, Any]]:
        parsed = [f if isinstance(f, Fault) else Fault.from_json(dict(f)) for f in faults]
        with self._lock:
            self._faults.extend(parsed)
            return [f.to_json() for f in self._faults]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_json() for f in self._faults]

    def take_fault(self, kind: str) -> Fault | None:
        """The fault the next `kind` request suffers, if any (its count goes down by one)."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.matches(kind):
                    fault.count -= 1
                    if fault.count <= 0:
                        del self._faults[index]
                    self._counters["faults_applied"] += 1
                    return dataclasses.replace(fault, count=1)
            return None

    def queue_reply(self, reply: ScriptedReply | Mapping[str, Any]) -> None:
        """The next chat answer (or, with `repeat`, every answer until reset or replaced)."""
        parsed = reply if isinstance(reply, ScriptedReply) else ScriptedReply.from_json(dict(reply))
        with self._lock:
            if parsed.repeat:
                self._sticky_reply = parsed
            else:
                self._replies.append(parsed)

    def clear_replies(self) -> None:
        with self._lock:
            self._replies.clear()
            self._sticky_reply = None

    def next_reply(self) -> ScriptedReply | None:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
            return self._sticky_reply

    # -- the clock -------------------------------------------------------------------------------------

    def now(self) -> float:
        """The emulator's time ("Google's clock"): the wall clock moved by `advance_clock`."""
        with self._lock:
            return time.time() + self._clock_offset

    def advance_clock(self, seconds: float) -> dict[str, float]:
        """Move the emulator's clock forward: issued tokens age (and expire) without anyone waiting."""
        if not math.isfinite(seconds) or seconds < 0:
            raise EmulatorError("the clock only moves forward, by a finite number of seconds")
        with self._lock:
            self._clock_offset += seconds
            return self.clock()

    def clock(self) -> dict[str, float]:
        with self._lock:
            return {"now": time.time() + self._clock_offset, "offset": self._clock_offset}

    # -- tokens ----------------------------------------------------------------------------------------

    def issue_token(
        self,
        grant: str,
        *,
        principal: str,
        scopes: tuple[str, ...] | list[str] = (),
        lifetime: float | None = None,
    ) -> tuple[str, IssuedToken]:
        """Mint an access token; `lifetime` defaults to the configured expires_in."""
        value = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._lock:
            now = self.now()
            seconds = self.config.expires_in if lifetime is None else lifetime
            issued = IssuedToken(
                id=next(self._token_ids),
                grant=grant,
                principal=principal,
                scopes=tuple(scopes) or self.config.scopes,
                issued_at=now,
                expires_at=now + seconds,
            )
            self._tokens[value] = issued
            self._counters["tokens_issued"] += 1
            self._grants[grant] += 1
        return value, issued

    def lookup_token(self, value: str) -> IssuedToken | None:
        """The record of a live token, or None when unknown or expired."""
        with self._lock:
            issued = self._tokens.get(value)
            if issued is None or not issued.live(self.now()):
                return None
            return issued

    def token_record(self, value: str) -> IssuedToken | None:
        """The record of a token this emulator issued, live or expired (None: never issued)."""
        with self._lock:
            return self._tokens.get(value)

    def metadata_token(
        self, principal: str, scopes: tuple[str, ...]
    ) -> tuple[str, IssuedToken, int]:
        """The metadata server's token for `scopes`, as a real one serves it: the cached token again, with
        the seconds it has left, until fewer than metadata_refresh_before remain; then a new one.
        Returns (value, record, expires_in)."""
        with self._lock:
            now = self.now()
            value = self._metadata_tokens.get(scopes)
            issued = self._tokens.get(value) if value is not None else None
            if (
                value is None
                or issued is None
                or issued.expires_at - now < self.config.metadata_refresh_before
                or issued.expires_at - now <= 0
            ):
                value, issued = self.issue_token("metadata", principal=principal, scopes=scopes)
                self._metadata_tokens[scopes] = value
            return value, issued, max(0, int(issued.expires_at - now))

    def caller(self, authorization: str) -> IssuedToken | None:
        """The live token an `Authorization: Bearer ...` header carries, or None."""
        return self.lookup_token(bearer_value(authorization) or "")

    def expire_all(self) -> int:
        """Make every issued token expired now; returns how many were live."""
        with self._lock:
            now = self.now()
            live = [t for t in self._tokens.values() if t.live(now)]
            for issued in live:
                issued.expires_at = now - 1
            return len(live)

    def issued_tokens(self) -> list[dict[str, Any]]:
        with self._lock:
            now = self.now()
            return [t.describe(now) for t in self._tokens.values()]

    # -- the Model Garden catalog and self-deployed endpoints -----------------------------------------

    def catalog(self) -> list[CatalogModel]:
        """The publisher `google` models, in catalog order."""
        with self._lock:
            return list(self._catalog.values())

    def catalog_model(self, model_id: str) -> CatalogModel | None:
        with self._lock:
            return self._catalog.get(model_id)

    def put_catalog_model(self, model: CatalogModel | Mapping[str, Any]) -> dict[str, Any]:
        """Add a model to the catalog, or replace the one with its id; returns its admin view."""
        parsed = model if isinstance(model, CatalogModel) else CatalogModel.from_json(dict(model))
        with self._lock:
            self._catalog[parsed.id] = parsed
        return parsed.to_json()

    def remove_catalog_model(self, model_id: str) -> bool:
        with self._lock:
            return self._catalog.pop(model_id, None) is not None

    def reset_catalog(self) -> None:
        """Back to the seeded catalog."""
        with self._lock:
            self._catalog = {m.id: m for m in SEED_CATALOG}

    def project_number(self, project: str) -> str:
        """The number of a project id (made up but stable; the default project's is the metadata server's)."""
        return project_number(
            project,
            default_project=self.config.project_id,
            default_number=DEFAULT_PROJECT_NUMBER,
        )

    def add_endpoint(self, endpoint: DeployedEndpoint | Mapping[str, Any]) -> DeployedEndpoint:
        """Deploy a model to an endpoint (the project defaults to config project_id); refuses a taken ID."""
        parsed = (
            endpoint
            if isinstance(endpoint, DeployedEndpoint)
            else DeployedEndpoint.from_json(
                dict(endpoint), default_project=self.config.project_id, now=self.now()
            )
        )
        with self._lock:
            if parsed.id in self._endpoints:
                raise EmulatorError(f"endpoint {parsed.id} exists already")
            self._endpoints[parsed.id] = parsed
        return parsed

    def endpoints(
        self, project: str | None = None, location: str | None = None
    ) -> list[DeployedEndpoint]:
        """Deployed endpoints, oldest first; only those of `project` (id or number) and `location` if given."""
        with self._lock:
            found = list(self._endpoints.values())
        if project is not None:
            number = self.project_number(project)
            found = [e for e in found if self.project_number(e.project) == number]
        if location is not None:
            found = [e for e in found if e.location == location]
        return found

    def find_endpoint(
        self, project: str, location: str, endpoint_id: str
    ) -> DeployedEndpoint | None:
        """The endpoint an OpenAI-compatible URL names, if it exists there."""
        with self._lock:
            found = self._endpoints.get(endpoint_id)
        if (
            found is None
            or found.location != location
            or self.project_number(found.project) != self.project_number(project)
        ):
            return None
        return found

    def remove_endpoint(self, endpoint_id: str | None = None) -> int:
        """Undeploy one endpoint, or every one (no id); returns how many went."""
        with self._lock:
            if endpoint_id is None:
                count = len(self._endpoints)
                self._endpoints.clear()
                return count
            return 1 if self._endpoints.pop(endpoint_id, None) is not None else 0

    # -- refusals ----------------------------------------------------------------------------------------

    def refuse(self, project: str, refusal: str) -> dict[str, list[str]]:
        """Switch on one of Google's refusals (google_errors.REFUSALS) for `project`; returns every one on."""
        if refusal not in REFUSALS:
            raise EmulatorError(f"refusal is one of {list(REFUSALS)}, not {refusal!r}")
        if not isinstance(project, str) or not project.strip():
            raise EmulatorError("a refusal names the project it applies to")
        with self._lock:
            self._refusals.setdefault(project, set()).add(refusal)
            return self.refusals()

    def allow(self, project: str | None = None, refusal: str | None = None) -> dict[str, list[str]]:
        """Switch refusals off: one of a project, all of a project, or (no arguments) every one."""
        if refusal is not None and refusal not in REFUSALS:
            raise EmulatorError(f"refusal is one of {list(REFUSALS)}, not {refusal!r}")
        with self._lock:
            if project is None:
                if refusal is None:
                    self._refusals.clear()
                else:
                    for names in self._refusals.values():
                        names.discard(refusal)
            elif refusal is None:
                self._refusals.pop(project, None)
            else:
                self._refusals.get(project, set()).discard(refusal)
            self._refusals = {p: names for p, names in self._refusals.items() if names}
            return self.refusals()

    def refusals(self) -> dict[str, list[str]]:
        """project -> the refusals switched on, in the order Vertex checks them (config's denied_projects and
        disabled_projects count as USER_PROJECT_DENIED and SERVICE_DISABLED)."""
        with self._lock:
            table = {p: set(names) for p, names in self._refusals.items()}
            for project in self.config.denied_projects:
                table.setdefault(project, set()).add("USER_PROJECT_DENIED")
            for project in self.config.disabled_projects:
                table.setdefault(project, set()).add("SERVICE_DISABLED")
        return {p: [r for r in REFUSALS if r in names] for p, names in sorted(table.items())}

    def refused(self, project: str, refusal: str) -> bool:
        """Whether `refusal` is on for `project` (by id, or by the number of a project it is on for)."""
        table = self.refusals()
        if refusal in table.get(project, ()):
            return True
        number = self.project_number(project)
        return any(
            refusal in names and self.project_number(other) == number
            for other, names in table.items()
        )

    # -- records ---------------------------------------------------------------------------------------

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[name] += amount

    def record_request(
        self,
        *,
        method: str,
        path: str,
        kind: str,
        original_host: str | None,
        status: int | None,
        fault: str | None,
        token_id: int | None,
    ) -> None:
        with self._lock:
            self._counters[f"requests.{kind}"] += 1
            if original_host:
                self._original_hosts[original_host] += 1
            self._records.append(
                {
                    "id": next(self._request_ids),
                    "time": time.time(),
                    "method": method,
                    "path": path,
                    "kind": kind,
                    "original_host": original_host,
                    "status": status,
                    "fault": fault,
                    "token_id": token_id,
                }
            )

    def record_chat(
        self, *, path: str, headers: Mapping[str, str], raw_body: str, token_id: int | None
    ) -> None:
        try:
            body: Any = json.loads(raw_body)
        except ValueError:
            body = None
        with self._lock:
            self._chat_records.append(
                {
                    "time": time.time(),
                    "path": path,
                    "headers": mask_headers(headers),
                    "body": body,
                    "raw_body": raw_body,
                    "token_id": token_id,
                }
            )

    def requests(
        self, *, kind: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Recent requests (method, path, kind, original host, status, fault, token id), oldest first."""
        with self._lock:
            records = [dict(r) for r in self._records if kind is None or r["kind"] == kind]
        return records[-limit:] if limit else records

    def chat_requests(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Recent chat request bodies and headers (secret headers masked), oldest first."""
        with self._lock:
            records = [dict(r) for r in self._chat_records]
        return records[-limit:] if limit else records

    def record_vertex(self, record: Mapping[str, Any]) -> None:
        """One request to a Vertex surface: where it went (host, project, location, endpoint), the model, the
        headers that matter (x-goog-user-project; never a token) and what was answered."""
        with self._lock:
            self._vertex_records.append({"id": next(self._request_ids), **record})

    def vertex_requests(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Recent Vertex requests (see record_vertex), oldest first."""
        with self._lock:
            records = [dict(r) for r in self._vertex_records]
        return records[-limit:] if limit else records

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counters = dict(self._counters)
            return {
                "requests": {kind: counters.get(f"requests.{kind}", 0) for kind in KINDS},
                "original_hosts": dict(self._original_hosts),
                "tokens_issued": counters.get("tokens_issued", 0),
                "tokens_by_grant": dict(self._grants),
                "live_tokens": sum(1 for t in self._tokens.values() if t.live(self.now())),
                "chat_ok": counters.get("chat_ok", 0),
                "chat_rejected": counters.get("chat_rejected", 0),
                "token_rejected": counters.get("token_rejected", 0),
                "faults_applied": counters.get("faults_applied", 0),
                "faults_pending": [f.to_json() for f in self._faults],
                "replies_pending": len(self._replies) + (1 if self._sticky_reply else 0),
                "known_keys": sorted(self._keys),
                "refusals": self.refusals(),
                "config": self.config.to_json(),
            }

    def reset(self) -> None:
        """Forget tokens, faults, replies, records, counters and clock moves; keep config, registered keys, the
        catalog, deployed endpoints and refusals."""
        with self._lock:
            self._tokens.clear()
            self._metadata_tokens.clear()
            self._clock_offset = 0.0
            self._faults.clear()
            self.clear_replies()
            self._records.clear()
            self._chat_records.clear()
            self._vertex_records.clear()
            self._counters.clear()
            self._original_hosts.clear()
            self._grants.clear()


def bearer_value(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer ...` header, or None."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def rsa_verifier(pem: str) -> Any:
    """google-auth's RSA verifier (backed by `cryptography` when installed, else `rsa`)."""
    from google.auth import crypt

    try:
        return crypt.RSAVerifier.from_string(pem)  # type: ignore[no-untyped-call]
    except Exception as err:  # each backend raises its own type for a malformed key
        raise EmulatorError(f"not an RSA public key or certificate PEM: {err}") from None


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers safe to record: credentials replaced by their scheme and `***`."""
    masked: dict[str, str] = {}
    for name, value in headers.items():
        if name.lower() in _SECRET_HEADERS:
            scheme, _, rest = value.partition(" ")
            masked[name] = f"{scheme} ***" if rest else "***"
        else:
            masked[name] = value
    return masked

"""What `vertex-env check` finds out before the app does: the credential, the token, the base URL and one real
request to Vertex, each a row (`ok`, `warn`, `fail`, `skip`) with a one-line reason and, on a failure, the fix
from the table of Google's refusals (vertex_env.core.refusal_table) with this principal and project filled in.

`check_environment` checks a resolved profile as `export` hands it to an app (the token and the base URL, no
x-goog-user-project); `check_via` checks a running `serve` as an app configured with its URL and key would.
commands/check.py prints the report and exits with the code of its first failure.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from vertex_env.config import options as option_table
from vertex_env.config.routing import emulator_host
from vertex_env.config.values import format_duration
from vertex_env.core.refusal_table import (
    VERTEX_LOCATIONS,
    GoogleAnswer,
    Principal,
    Situation,
    advise,
    google_message,
    principal_of,
    read_answer,
    row_for,
    situation_for,
)
from vertex_env.environment import Environment
from vertex_env.errors import (
    AuthError,
    ConfigError,
    NoCredentialsError,
    TransientError,
    UsageError,
    VertexEnvError,
)

__all__ = [
    "FAIL",
    "OK",
    "SKIP",
    "WARN",
    "CheckReport",
    "CheckRow",
    "check_environment",
    "check_via",
    "is_embedding_model",
]

log = logging.getLogger(__name__)

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
#: What `check` sends: the shortest answer a model can give.
PROMPT = "Reply with OK."
#: Pages of the Model Garden catalog read for a 404's "closest model" suggestion (100 models a page).
_CATALOG_PAGES = 5


@dataclass
class CheckRow:
    """One thing checked: its state, one line saying why, the fixes on a failure, and its exit code."""

    name: str
    state: str
    text: str
    fixes: tuple[str, ...] = ()
    exit_code: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "text": self.text,
            "fix": list(self.fixes),
            "exit_code": self.exit_code,
            **({"details": self.details} if self.details else {}),
        }


@dataclass
class CheckReport:
    rows: list[CheckRow] = field(default_factory=list)

    def add(self, row: CheckRow) -> CheckRow:
        self.rows.append(row)
        return row

    def skip_rest(self, names: tuple[str, ...], why: str) -> None:
        for name in names:
            self.rows.append(CheckRow(name, SKIP, why))

    @property
    def exit_code(self) -> int:
        """0 when no row failed, else the code of the first failure."""
        return next((row.exit_code for row in self.rows if row.state == FAIL), 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.exit_code == 0,
            "exit_code": self.exit_code,
            "rows": [row.to_json() for row in self.rows],
        }


def _failed(name: str, err: VertexEnvError) -> CheckRow:
    return CheckRow(
        name, FAIL, err.message, (err.hint,) if err.hint else (), exit_code=err.exit_code
    )


def is_embedding_model(model: str) -> bool:
    """text-embedding-005, gemini-embedding-001, text-multilingual-embedding-002: asked at /embeddings."""
    return "embedding" in model.lower()


def _request_body(model: str) -> tuple[str, bytes]:
    if is_embedding_model(model):
        return "/embeddings", json.dumps({"model": model, "input": PROMPT}).encode()
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 1}
    return "/chat/completions", json.dumps(body).encode()


# -- the profile as `export` hands it over ---------------------------------------------------------------------


def check_environment(env: Environment, *, model: str, call: bool = True) -> CheckReport:
    """The rows credential, token, base URL and request for a resolved profile."""
    report = CheckReport()
    rest = ("token", "base url", "request")
    profile = env.profile
    try:
        source = env.token_source.source
        info = source.info() if source.kind != "metadata" else None
    except VertexEnvError as err:
        report.add(_failed("credential", err))
        report.skip_rest(rest, "needs a credential")
        return report
    email = None
    kind = source.credential_type
    if kind == "authorized_user" and not (info or {}).get("account"):
        from vertex_env.config.file import gcloud_account

        email = gcloud_account(env.environ)
    principal = principal_of(kind, info, impersonate=profile.impersonate, email=email)
    where = f"{kind} from {source.origin}" + (f" ({source.path})" if source.path else "")
    quota = profile.quota_project
    quota_text = (
        f"quota project {quota} [{profile.sources.get('quota_project', 'default')}]"
        if quota
        else "no quota project"
    )
    cred_row = report.add(
        CheckRow(
            "credential",
            OK,
            f"{where}; principal {principal.member}; {quota_text}",
            details={
                "type": kind,
                "origin": source.origin,
                "path": source.path,
                "principal": principal.member,
                "quota_project": quota,
            },
        )
    )
    if kind.startswith(("authorized_user", "external_account_authorized_user")) and not quota:
        cred_row.state = WARN
        cred_row.fixes = (
            "user credentials are billed to a quota project: "
            f"`gcloud auth application-default set-quota-project {profile.project or 'PROJECT'}`",
        )

    try:
        token = env.token()
    except VertexEnvError as err:
        if isinstance(err, NoCredentialsError):
            # `locate` names the metadata server as the last resort without asking it; nothing answered.
            report.rows[report.rows.index(cred_row)] = _failed("credential", err)
            report.skip_rest(rest, "needs a credential")
            return report
        report.add(_failed("token", err))
        report.skip_rest(rest[1:], "needs a token")
        return report
    if source.kind == "metadata" and token.principal and "@" in token.principal:
        principal = Principal("serviceAccount", token.principal)
        cred_row.details["principal"] = principal.member
        cred_row.text = f"{where}; principal {principal.member}; {quota_text}"
    left = token.remaining()
    report.add(
        CheckRow(
            "token",
            OK,
            f"{'served from the cache' if token.from_cache else 'minted now'}, expires in "
            f"{format_duration(left)}",
            details={"from_cache": token.from_cache, "remaining_seconds": int(left)},
        )
    )

    base_row = _base_url_row(env)
    report.add(base_row)
    if base_row.state == FAIL:
        report.skip_rest(rest[2:], "needs a base URL")
        return report
    if not call:
        report.add(CheckRow("request", SKIP, "not sent (--no-call)"))
        return report
    request_row = report.add(_request_row(env, token.value, model, principal))
    if request_row.state == FAIL and "row" in request_row.details:
        env.token_source.note_refusal(
            int(request_row.details["status"]), request_row.details["row"]
        )
    elif report.exit_code == 0:
        env.token_source.forget_refusal()
    return report


def _base_url_row(env: Environment) -> CheckRow:
    profile = env.profile
    try:
        base = env.base_url
    except VertexEnvError as err:
        return _failed("base url", err)
    location, endpoint = profile.location, profile.endpoint
    parts = [
        f"project {profile.project} [{profile.sources.get('project', 'default')}]",
    ]
    known = location in VERTEX_LOCATIONS
    parts.append(
        f"location {location}" + ("" if known else " (not a location Vertex serves models in)")
    )
    parts.append(
        "endpoint openapi (Google's managed models)"
        if endpoint == "openapi"
        else f"endpoint {endpoint} (a self-deployed model)"
    )
    emulator = emulator_host(env.environ)
    if emulator:
        parts.append(f"the emulator at {emulator} stands in for Vertex")
    elif profile.host:
        parts.append(f"host {profile.host} (overridden)")
    row = CheckRow(
        "base url",
        OK,
        f"{base}: " + ", ".join(parts),
        details={
            "base_url": base,
            "project": profile.project,
            "location": location,
            "location_known": known,
            "endpoint": endpoint,
        },
    )
    if not known:
        row.state = WARN
        row.fixes = (
            f"Vertex serves models in: {', '.join(VERTEX_LOCATIONS[:6])}, …: try `--location global`",
        )
    return row


def _request_row(env: Environment, token: str, model: str, principal: Principal) -> CheckRow:
    import google.auth.exceptions

    from vertex_env.core.refusals import network_reason
    from vertex_env.core.transport import make_request

    profile = env.profile
    path, body = _request_body(model)
    url = env.base_url + path
    debug = bool(option_table.value("debug", {}, env.environ))
    request = make_request(environ=env.environ, total=profile.timeout, debug=debug)
    started = time.monotonic()
    try:
        answer = request(
            url,
            method="POST",
            body=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
    except google.auth.exceptions.TransportError as err:
        return _failed(
            "request", TransientError(f"POST …{path} got no answer: {network_reason(str(err))}")
        )
    took = (time.monotonic() - started) * 1000
    status, data = int(answer.status), bytes(answer.data or b"")
    shown = f"POST …{path} {model}"
    if 200 <= status < 300:
        return CheckRow(
            "request",
            OK,
            f"{shown} → HTTP {status} in {took:.0f} ms",
            details={"url": url, "model": model, "status": status},
        )
    refusal = read_answer(status, data)
    if status == 401:
        # The token Google just refused must not be handed out again: the next export or run mints.
        env.token_source.invalidate(token)
    catalog: tuple[str, ...] = ()
    if row_for(refusal).key == "MODEL_NOT_FOUND":
        catalog = model_garden_ids(env, token)
    situation = situation_for(
        project=profile.project,
        location=profile.location,
        quota_project=profile.quota_project,
        principal=principal,
        model=model,
        catalog=catalog,
        sent_quota_header=False,
    )
    return _refused_row(shown, url, model, refusal, situation)


def _refused_row(
    shown: str, url: str, model: str, refusal: GoogleAnswer, situation: Situation
) -> CheckRow:
    advice = advise(refusal, situation)
    return CheckRow(
        "request",
        FAIL,
        f"{shown} → HTTP {refusal.status} {refusal.key}: {advice.summary}",
        advice.fixes,
        exit_code=advice.exit_code,
        details={
            "url": url,
            "model": model,
            "status": refusal.status,
            "reason": refusal.reason,
            "domain": refusal.domain,
            "metadata": dict(refusal.metadata),
            "wrapped_in_list": refusal.wrapped,
            "row": advice.key,
            "google_message": google_message(refusal),
        },
    )


def model_garden_ids(env: Environment, token: str) -> tuple[str, ...]:
    """The Model Garden catalog's model ids (`google/…`), read with this token; () when it cannot be read."""
    from vertex_env.core.transport import make_request

    parts = urlsplit(env.base_url)
    root = f"{parts.scheme}://{parts.netloc}/v1beta1/publishers/google/models"
    request = make_request(environ=env.environ, total=env.profile.timeout, retries=0)
    ids: list[str] = []
    page = ""
    for _ in range(_CATALOG_PAGES):
        query = "?pageSize=100" + (f"&pageToken={page}" if page else "")
        try:
            answer = request(
                root + query, method="GET", headers={"Authorization": f"Bearer {token}"}
            )
            data = json.loads(answer.data or b"{}") if int(answer.status) == 200 else {}
        except Exception as err:  # a suggestion only: never fail the check for it
            log.debug("Model Garden catalog not read: %s", type(err).__name__)
            break
        models = data.get("publisherModels") if isinstance(data, dict) else None
        for item in models or ():
            name = str(item.get("name", "")) if isinstance(item, dict) else ""
            if name.startswith("publishers/"):
                pieces = name.split("/")  # publishers/{publisher}/models/{id}
                if len(pieces) == 4:
                    ids.append(f"{pieces[1]}/{pieces[3]}")
        page = str(data.get("nextPageToken") or "") if isinstance(data, dict) else ""
        if not page:
            break
    return tuple(ids)


# -- a running serve, as an app sees it --------------------------------------------------------------------------


def check_via(
    base_url: str, key: str, *, model: str, call: bool = True, timeout: float = 20
) -> CheckReport:
    """The rows serve, models and request for a running `serve` (or `run --proxy`) at `base_url`."""
    import requests

    from vertex_env.system.loopback import goes_direct

    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"invalid --via {base_url!r}: expected serve's OPENAI_BASE_URL (http://HOST:PORT/…)"
        )
    base = base_url.rstrip("/")
    origin = f"{parts.scheme}://{parts.netloc}"
    session = requests.Session()
    session.trust_env = not goes_direct(base_url)  # loopback never through an HTTP proxy
    report = CheckReport()

    try:
        ready = session.get(origin + "/readyz", timeout=timeout)
    except requests.RequestException as err:
        report.add(
            _failed("serve", TransientError(f"nothing answers at {origin} ({type(err).__name__})"))
        )
        report.skip_rest(("models", "request"), "needs serve")
        return report
    text = ready.text.strip()[:200]
    if ready.status_code == 200:
        report.add(CheckRow("serve", OK, f"{origin}/readyz: {text}"))
    elif ready.status_code == 503:
        report.add(_failed("serve", TransientError(f"{origin}/readyz: {text}")))
        report.skip_rest(("models", "request"), "serve is not ready")
        return report
    else:
        report.add(
            CheckRow(
                "serve",
                WARN,
                f"{origin}/readyz answered HTTP {ready.status_code}: not a vertex-env serve?",
            )
        )

    auth = {"Authorization": f"Bearer {key}"}
    try:
        listed = session.get(base + "/models", headers=auth, timeout=timeout)
    except requests.RequestException as err:
        report.add(_failed("models", TransientError(f"GET …/models: {type(err).__name__}")))
        report.skip_rest(("request",), "needs serve")
        return report
    own = _serve_refusal(listed)
    if own is not None:
        report.add(_failed("models", own))
        report.skip_rest(("request",), "needs the key serve takes")
        return report
    if listed.status_code == 200:
        try:
            count = len(listed.json().get("data") or ())
        except (ValueError, AttributeError):
            count = 0
        report.add(CheckRow("models", OK, f"GET …/models → {count} models"))
    else:
        report.add(
            CheckRow(
                "models",
                WARN,
                f"GET …/models → HTTP {listed.status_code}: serve relays it to Vertex, which lists no models "
                "on its OpenAI-compatible path",
            )
        )

    if not call:
        report.add(CheckRow("request", SKIP, "not sent (--no-call)"))
        return report
    path, body = _request_body(model)
    shown = f"POST …{path} {model}"
    try:
        answer = session.post(
            base + path,
            data=body,
            headers={**auth, "Content-Type": "application/json"},
            timeout=timeout,
        )
    except requests.RequestException as err:
        report.add(
            _failed("request", TransientError(f"{shown} got no answer ({type(err).__name__})"))
        )
        return report
    own = _serve_refusal(answer)
    if own is not None:
        report.add(_failed("request", own))
    elif 200 <= answer.status_code < 300:
        report.add(CheckRow("request", OK, f"{shown} → HTTP {answer.status_code} through serve"))
    else:
        project, location = _project_location(parts.path)
        situation = situation_for(
            project=project,
            location=location,
            quota_project=None,
            principal=None,
            model=model,
            sent_quota_header=True,
        )
        report.add(
            _refused_row(
                shown,
                base + path,
                model,
                read_answer(answer.status_code, answer.content),
                situation,
            )
        )
    return report


def _serve_refusal(answer: Any) -> VertexEnvError | None:
    """serve's own refusal (its OpenAI-shaped error, `code` a word such as `wrong_key`), not Google's."""
    if answer.status_code < 400:
        return None
    try:
        error = answer.json().get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, Mapping) or not isinstance(error.get("code"), str):
        return None
    message = str(error.get("message") or "")
    if answer.status_code == 401:
        return UsageError(
            f"serve refused the key ({error['code']})",
            hint="pass serve's key: OPENAI_API_KEY or --key-file (the file serve was given)",
        )
    if answer.status_code in (404, 421):
        return ConfigError(message, hint="use the OPENAI_BASE_URL serve printed")
    if error["code"] == "token_error":
        return AuthError(message, hint="`vertex-env check` where serve runs tells why")
    return TransientError(message or f"serve answered HTTP {answer.status_code}")


def _project_location(path: str) -> tuple[str | None, str | None]:
    parts = path.strip("/").split("/")
    found: dict[str, str] = {}
    for name, value in itertools.pairwise(parts):
        if name in ("projects", "locations") and name not in found:
            found[name] = value
    return found.get("projects"), found.get("locations")

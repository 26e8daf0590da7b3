"""The one table of Google's refusals: what Vertex (or IAM) answered → one line saying why, and the fix for this
principal and project. `vertex-env check`, the proxy's log line, `status` and the token errors all read it.

Google's JSON APIs answer a `google.rpc.Status` (`{"error": {"code", "message", "status", "details"}}`); the
detail clients branch on is the `google.rpc.ErrorInfo` (googleapis `google/rpc/error_details.proto`, AIP-193):
its `reason` (SERVICE_DISABLED, IAM_PERMISSION_DENIED, …), `domain` (the service that decided) and `metadata`
(the consumer project, the permission, the quota, the activation URL). Vertex's OpenAI-compatible paths wrap
that object in a list (`[{"error": …}]`). `read_answer` reads every shape into a `GoogleAnswer`; `advise` finds
the table's row for it and fills in the commands.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vertex_env.config.values import DEFAULT_CHECK_MODEL, VERTEX_LOCATIONS

__all__ = [
    "DEFAULT_MODEL",
    "GCLOUD_CLIENT_PROJECTS",
    "TABLE",
    "VERTEX_LOCATIONS",
    "Advice",
    "GoogleAnswer",
    "Principal",
    "Row",
    "Situation",
    "advise",
    "principal_of",
    "read_answer",
    "readme_section",
]

#: The model `check` asks when none is named.
DEFAULT_MODEL = DEFAULT_CHECK_MODEL
#: Project numbers of gcloud's own OAuth clients: user credentials sent without a quota project are billed
#: there, and Google's refusal names that project as the consumer.
GCLOUD_CLIENT_PROJECTS = ("764086051850", "32555940559")
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_HELP = "type.googleapis.com/google.rpc.Help"
_PRECONDITION = "type.googleapis.com/google.rpc.PreconditionFailure"
#: The exit codes of errors.py the table's rows end a command with (no import: errors.py names them too).
REFUSED_EXIT = 12
TRANSIENT_EXIT = 8
_MAX_MESSAGE = 600


@dataclass(frozen=True)
class GoogleAnswer:
    """A refusal as Google sent it: HTTP status, `google.rpc.Status` fields, the ErrorInfo, Help links."""

    status: int
    status_name: str | None = None
    message: str = ""
    reason: str | None = None
    domain: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    links: tuple[str, ...] = ()
    #: The error object came wrapped in a list (Vertex's OpenAI-compatible paths).
    wrapped: bool = False
    #: An OAuth2/STS body's `error` (RFC 6749: invalid_grant, invalid_client, …).
    oauth_error: str | None = None
    #: PreconditionFailure violation types (VPC_SERVICE_CONTROLS, …).
    violations: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """What the answer is known by: its ErrorInfo reason, else its OAuth error, status name or HTTP code."""
        return self.reason or self.oauth_error or self.status_name or f"HTTP {self.status}"


def _parse(body: bytes | str | Any) -> Any:
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return None
    return body


def read_answer(status: int, body: bytes | str | Any) -> GoogleAnswer:
    """The refusal in an error body (bytes, text or parsed JSON) of any shape Google sends: a `google.rpc.Status`
    (`{"error": {…}}`), the same wrapped in a list, an OAuth2/STS `{"error": "invalid_grant", …}`, or no JSON
    at all (an HTML page): then only the status is known."""
    data = _parse(body)
    wrapped = False
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data, wrapped = data[0], True
    if not isinstance(data, dict):
        return GoogleAnswer(status=status, wrapped=wrapped)
    error = data.get("error")
    if isinstance(error, str):
        desc = data.get("error_description")
        return GoogleAnswer(
            status=status,
            message=str(desc) if desc else "",
            oauth_error=error,
            wrapped=wrapped,
        )
    if not isinstance(error, dict):
        return GoogleAnswer(status=status, wrapped=wrapped)
    reason = domain = None
    metadata: dict[str, str] = {}
    links: list[str] = []
    violations: list[str] = []
    for detail in error.get("details") or ():
        if not isinstance(detail, dict):
            continue
        kind = detail.get("@type")
        if kind == _ERROR_INFO and reason is None:
            reason = str(detail.get("reason") or "") or None
            domain = str(detail.get("domain") or "") or None
            raw = detail.get("metadata")
            if isinstance(raw, dict):
                metadata = {str(k): str(v) for k, v in raw.items()}
        elif kind == _HELP:
            links += [
                str(link["url"])
                for link in detail.get("links") or ()
                if isinstance(link, dict) and link.get("url")
            ]
        elif kind == _PRECONDITION:
            violations += [
                str(v.get("type"))
                for v in detail.get("violations") or ()
                if isinstance(v, dict) and v.get("type")
            ]
    name = error.get("status")
    return GoogleAnswer(
        status=status,
        status_name=str(name) if name else None,
        message=str(error.get("message") or ""),
        reason=reason,
        domain=domain,
        metadata=metadata,
        links=tuple(dict.fromkeys(links)),
        wrapped=wrapped,
        violations=tuple(violations),
    )


@dataclass(frozen=True)
class Principal:
    """Who the token acts as, in IAM's terms: `kind` is `user`, `serviceAccount` or `principalSet` (workload or
    workforce identity federation), `name` the email or the principal set's URI (None: not known here)."""

    kind: str
    name: str | None = None

    @property
    def member(self) -> str:
        """The `--member` of a gcloud IAM binding (a placeholder where the name is not known)."""
        if self.kind == "principalSet":
            return self.name or "principalSet://iam.googleapis.com/POOL/*"
        placeholder = "EMAIL" if self.kind == "user" else "SA_EMAIL"
        return f"{self.kind}:{self.name or placeholder}"

    def __str__(self) -> str:
        return self.member


_POOL = re.compile(
    r"^//iam\.googleapis\.com/((?:projects/[^/]+/)?locations/[^/]+/(?:workloadIdentityPools|workforcePools)/[^/]+)"
    r"/providers/[^/]+$"
)
_IMPERSONATED = re.compile(r"serviceAccounts/([^:/]+):generateAccessToken")


def principal_of(
    credential_type: str,
    info: Mapping[str, Any] | None,
    *,
    impersonate: str | None = None,
    email: str | None = None,
) -> Principal:
    """The principal a credential's tokens act as: the impersonated service account (when there is one), the
    service account, the workload identity pool's principal set, or the user (`email` when known: the ADC
    file's `account`, gcloud's configured account, or what the metadata server said)."""
    if impersonate:
        return Principal("serviceAccount", impersonate)
    data = info or {}
    url = str(data.get("service_account_impersonation_url") or "")
    match = _IMPERSONATED.search(url)
    if match:
        return Principal("serviceAccount", match.group(1))
    kind = credential_type.split(" ")[0]
    if kind == "service_account" or kind == "compute_engine":
        return Principal("serviceAccount", email or data.get("client_email") or None)
    if kind in ("external_account", "external_account_authorized_user"):
        pool = _POOL.match(str(data.get("audience") or ""))
        return Principal(
            "principalSet", f"principalSet://iam.googleapis.com/{pool.group(1)}/*" if pool else None
        )
    account = email or data.get("account") or None
    return Principal("user", str(account) if account else None)


@dataclass(frozen=True)
class Situation:
    """What vertex-env knows about the request Google refused, to fill in the fix."""

    project: str | None = None
    quota_project: str | None = None
    location: str | None = None
    model: str | None = None
    principal: Principal | None = None
    #: Model Garden ids (with their `google/` publisher) for a 404's "closest model" suggestion.
    catalog: tuple[str, ...] = ()
    #: The request carried x-goog-user-project (the proxy, `serve`, the Python client); `export` hands over none.
    sent_quota_header: bool = False


@dataclass(frozen=True)
class Advice:
    """One row's verdict on one answer: `key` names the row, `summary` says why in one line, `fixes` what to run."""

    key: str
    summary: str
    fixes: tuple[str, ...]
    exit_code: int = REFUSED_EXIT
    link: str | None = None

    def line(self) -> str:
        """Everything on one line (the proxy's log, an error's hint)."""
        fix = "; ".join(self.fixes)
        return f"{self.summary}" + (f"; fix: {fix}" if fix else "")


@dataclass(frozen=True)
class Row:
    """One kind of refusal: when it applies, what Google sends (docs/check.md), and the advice."""

    key: str
    #: What Google answers, as docs/check.md shows it.
    google_says: str
    applies: Callable[[GoogleAnswer], bool]
    advise: Callable[[GoogleAnswer, Situation], tuple[str, tuple[str, ...]]]
    #: An answer this row handles (docs rendering and the table's own tests).
    sample: GoogleAnswer
    exit_code: int = REFUSED_EXIT


def _consumer(answer: GoogleAnswer, fallback: str | None) -> str:
    """The consumer project Google names (`projects/X` in the metadata, or its containerInfo), else ours."""
    consumer = answer.metadata.get("consumer", "")
    if consumer.startswith("projects/"):
        return consumer[len("projects/") :]
    return answer.metadata.get("containerInfo") or fallback or "PROJECT"


def _project(situation: Situation) -> str:
    return situation.project or "PROJECT"


def _member(situation: Situation) -> str:
    return (situation.principal or Principal("user")).member


def _is_quota_project_required(answer: GoogleAnswer) -> bool:
    consumer = answer.metadata.get("consumer", "").removeprefix("projects/")
    return answer.reason == "SERVICE_DISABLED" and (
        consumer in GCLOUD_CLIENT_PROJECTS or "requires a quota project" in answer.message
    )


def _quota_project_required(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    project = s.quota_project or _project(s)
    fixes = [f"`gcloud auth application-default set-quota-project {project}`"]
    if s.quota_project and not s.sent_quota_header:
        summary = (
            f"user credentials need a quota project on every request: {s.quota_project} is configured, but "
            "`export` and plain `run` hand over only the token, so the request carried no x-goog-user-project"
        )
        fixes = [
            "use `vertex-env run --proxy`, `vertex-env serve` or `vertex_env.openai_client()` (they send "
            f"x-goog-user-project: {s.quota_project})",
            f"or have the app send the header x-goog-user-project: {s.quota_project}",
        ]
    else:
        summary = (
            "user credentials (gcloud login) were sent without a quota project, so Google billed gcloud's own "
            "OAuth client project, where Vertex AI is not enabled for you"
        )
        fixes.append(f"or pass `--quota-project {project}` (VERTEX_ENV_QUOTA_PROJECT)")
        fixes.append("and send it: `run --proxy`, `serve` and `vertex_env.openai_client()` do")
    return summary, tuple(fixes)


def _service_disabled(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    project = _consumer(answer, s.project)
    service = answer.metadata.get("service") or "aiplatform.googleapis.com"
    fixes = [f"`gcloud services enable {service} --project {project}`"]
    url = answer.metadata.get("activationUrl") or next(iter(answer.links), None)
    if url:
        fixes.append(f"or enable it at {url}")
    return (
        f"the {answer.metadata.get('serviceTitle') or 'Vertex AI API'} is not enabled in project {project} "
        "(or was enabled minutes ago)",
        tuple(fixes),
    )


def _iam_denied(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    permission = answer.metadata.get("permission") or "aiplatform.endpoints.predict"
    project = _project(s)
    return (
        f"{_member(s)} lacks {permission} on project {project}",
        (
            f"`gcloud projects add-iam-policy-binding {project} --member={_member(s)} "
            "--role=roles/aiplatform.user`",
        ),
    )


def _token_creator_denied(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    target = answer.metadata.get("resource", "")
    target = target.rsplit("/", 1)[-1] if "serviceAccounts/" in target else "SA_EMAIL"
    member = _member(s)
    return (
        f"{member} may not mint tokens for the service account {target} "
        "(iam.serviceAccounts.getAccessToken)",
        (
            f"`gcloud iam service-accounts add-iam-policy-binding {target} --member={member} "
            "--role=roles/iam.serviceAccountTokenCreator`",
        ),
    )


def _user_project_denied(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    quota = _consumer(answer, s.quota_project)
    return (
        f"{_member(s)} may not bill requests to the quota project {quota} (serviceusage.services.use)",
        (
            f"`gcloud projects add-iam-policy-binding {quota} --member={_member(s)} "
            "--role=roles/serviceusage.serviceUsageConsumer`",
            "or name a quota project you may use: `--quota-project ID`",
        ),
    )


def _consumer_invalid(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    named = _consumer(answer, s.project)
    return (
        f"{named!r} is not a project id Google knows (a display name or a deleted project?)",
        (
            "`gcloud projects list --format='table(projectId,name,projectNumber)'`",
            "then pass the PROJECT_ID column: `--project ID` (VERTEX_ENV_PROJECT)",
        ),
    )


def _billing_disabled(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    project = _consumer(answer, s.project)
    fixes = [
        "`gcloud billing accounts list`",
        f"`gcloud billing projects link {project} --billing-account=ACCOUNT_ID`",
    ]
    fixes += [f"or at {url}" for url in answer.links[:1]]
    return f"project {project} has no billing account", tuple(fixes)


def _is_vpc_sc(answer: GoogleAnswer) -> bool:
    return (
        answer.reason in ("SECURITY_POLICY_VIOLATED", "VPC_SERVICE_CONTROLS")
        or "VPC_SERVICE_CONTROLS" in answer.violations
        or "vpcServiceControlsUniqueIdentifier" in answer.message
    )


def _vpc_sc(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    uid = answer.metadata.get("uid") or _after(
        answer.message, "vpcServiceControlsUniqueIdentifier:"
    )
    return (
        f"a VPC Service Controls perimeter around project {_project(s)} refused the request "
        "(nothing you can change from here)",
        (
            "ask your organization's VPC Service Controls administrator to allow this caller "
            f"({_member(s)}) or network into the perimeter"
            + (f"; give them the identifier {uid}" if uid else ""),
            "or run from inside the perimeter",
        ),
    )


def _org_policy(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    return (
        f"an organization policy refused the request: {_short(answer.message)}",
        (
            "ask your organization's policy administrator (roles/orgpolicy.policyAdmin) to allow it for "
            f"project {_project(s)}; `gcloud org-policies list --project {_project(s)}` shows the policies",
        ),
    )


def _after(text: str, marker: str) -> str | None:
    _, found, rest = text.partition(marker)
    return rest.strip().split()[0].rstrip(".") if found and rest.strip() else None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:200] + "…"


def _quota(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    project = _consumer(answer, s.project)
    if project.isdigit() and s.project:
        project = s.project  # Google names the consumer by number; the console takes the id too
    metric = answer.metadata.get("quota_metric")
    limit = answer.metadata.get("quota_limit")
    where = answer.metadata.get("quota_location") or s.location
    console = f"https://console.cloud.google.com/iam-admin/quotas?project={project}"
    if metric or limit:
        summary = f"quota {limit or metric} of project {project}" + (
            f" in {where}" if where else ""
        )
        summary += " is used up"
        fixes = [f"ask for more at {console} (filter: {metric or limit})"]
    else:
        summary = (
            f"Vertex has no capacity for this model in {where or 'this location'} right now (shared quota, "
            "429 RESOURCE_EXHAUSTED)"
        )
        fixes = ["retry with exponential backoff"]
        if where and where != "global":
            fixes.append("or use `--location global` (Google spreads the load across regions)")
        fixes.append(f"or buy Provisioned Throughput / ask for quota at {console}")
    links = answer.links or tuple(re.findall(r"https://[^\s\"']+[^\s\"'.]", answer.message))
    fixes += [f"see {url}" for url in links[:1]]
    return summary, tuple(fixes)


def _is_model_not_found(answer: GoogleAnswer) -> bool:
    return answer.status == 404 and "Publisher Model" in answer.message


def _model_not_found(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    model = s.model or _model_in(answer.message) or "MODEL"
    where = s.location or _location_in(answer.message) or "this location"
    fixes: list[str] = []
    known = set(s.catalog)
    if "/" not in model and f"google/{model}" in known:
        fixes.append(f"name it with its publisher: google/{model}")
    elif not known or model in known:
        tries = [loc for loc in ("global", "us-central1") if loc != where]
        fixes.append("try another location: " + ", ".join(f"`--location {loc}`" for loc in tries))
    close = difflib.get_close_matches(model, sorted(known), n=3, cutoff=0.5) if known else []
    close = [c for c in close if c not in (model, f"google/{model}")]
    if close:
        fixes.append("closest models in the Model Garden catalog: " + ", ".join(close))
    fixes.append("list the models: `gcloud ai model-garden models list --model-filter=gemini`")
    return f"Vertex does not serve {model} in {where} (or this project may not use it)", tuple(
        fixes
    )


def _model_in(message: str) -> str | None:
    match = re.search(r"publishers/([^/`']+)/models/([^`'\s]+)", message)
    return f"{match.group(1)}/{match.group(2)}" if match else None


def _location_in(message: str) -> str | None:
    match = re.search(r"locations/([^/`'\s]+)", message)
    return match.group(1) if match else None


def _endpoint_not_found(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    region = s.location or "REGION"
    return (
        f"no such endpoint in project {_project(s)}, location {region}",
        (
            f"`gcloud ai endpoints list --project {_project(s)} --region {region}`",
            "then `--endpoint ID` (or `--endpoint openapi` for Gemini)",
        ),
    )


def _not_found(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    return (
        "Vertex has no such path under the base URL (an HTML 404 is Google's front end: wrong host, version "
        "or route)",
        (
            "check the base URL with `vertex-env status` "
            "(…/v1/projects/PROJECT/locations/LOCATION/endpoints/openapi)",
        ),
    )


def _unauthenticated(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    why = {
        "ACCESS_TOKEN_EXPIRED": "the token had expired",
        "CREDENTIALS_MISSING": "the request carried no token",
    }.get(answer.reason or "", "Google does not accept the token")
    return (
        f"{why} (401); vertex-env dropped it from its cache, so the next command mints a new one",
        (
            "check this machine's clock (`date -u`; a resumed VM or WSL drifts): "
            "`sudo hwclock -s` or `sudo timedatectl set-ntp true`",
            "if the login was revoked: `gcloud auth application-default login`",
        ),
    )


def _scope(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    return (
        "the token lacks the cloud-platform scope",
        (
            "`--scopes https://www.googleapis.com/auth/cloud-platform` (VERTEX_ENV_SCOPES), or drop --scopes",
        ),
    )


def _invalid_client(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    return (
        "the OAuth client of the credential was deleted or disabled (invalid_client)",
        ("`gcloud auth application-default login` (a login with gcloud's current client)",),
    )


def _invalid_argument(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    return (
        f"Vertex refused the request itself: {_short(answer.message) or 'INVALID_ARGUMENT'}",
        ("fix the request's body (model, messages, parameters) as the message says",),
    )


def _server_error(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    return (
        f"Vertex failed on its side (HTTP {answer.status}); nothing is wrong with your setup",
        ("retry with exponential backoff; https://status.cloud.google.com shows outages",),
    )


def _other(answer: GoogleAnswer, s: Situation) -> tuple[str, tuple[str, ...]]:
    return (f"Google refused the request: {_short(answer.message) or answer.key}", ())


def _sample(status: int, reason: str | None = None, message: str = "", **more: Any) -> GoogleAnswer:
    names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}
    names |= {404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}
    return GoogleAnswer(
        status=status, status_name=names.get(status), reason=reason, message=message, **more
    )


#: The one table, in the order rows are tried (the first that applies wins).
TABLE: tuple[Row, ...] = (
    Row(
        "QUOTA_PROJECT_REQUIRED",
        '403 `SERVICE_DISABLED` naming gcloud\'s client project, "… requires a quota project"',
        _is_quota_project_required,
        _quota_project_required,
        _sample(
            403,
            "SERVICE_DISABLED",
            "The aiplatform.googleapis.com API requires a quota project, which is not set by default.",
            metadata={"consumer": "projects/764086051850"},
        ),
    ),
    Row(
        "SERVICE_DISABLED",
        '403 `SERVICE_DISABLED`: "Vertex AI API has not been used in project … or it is disabled"',
        lambda a: a.reason == "SERVICE_DISABLED",
        _service_disabled,
        _sample(403, "SERVICE_DISABLED", metadata={"consumer": "projects/PROJECT"}),
    ),
    Row(
        "IAM_PERMISSION_DENIED (token creator)",
        "403 `IAM_PERMISSION_DENIED` from IAM on `iam.serviceAccounts.getAccessToken` (impersonation)",
        lambda a: (
            a.reason == "IAM_PERMISSION_DENIED"
            and (
                a.domain == "iam.googleapis.com"
                or "getAccessToken" in a.metadata.get("permission", "")
            )
        ),
        _token_creator_denied,
        _sample(
            403,
            "IAM_PERMISSION_DENIED",
            domain="iam.googleapis.com",
            metadata={"permission": "iam.serviceAccounts.getAccessToken"},
        ),
    ),
    Row(
        "IAM_PERMISSION_DENIED",
        "403 `IAM_PERMISSION_DENIED`: \"Permission 'aiplatform.endpoints.predict' denied on resource …\"",
        lambda a: (
            a.reason == "IAM_PERMISSION_DENIED"
            or (a.status == 403 and "aiplatform.endpoints.predict" in a.message)
        ),
        _iam_denied,
        _sample(
            403,
            "IAM_PERMISSION_DENIED",
            domain="aiplatform.googleapis.com",
            metadata={"permission": "aiplatform.endpoints.predict"},
        ),
    ),
    Row(
        "USER_PROJECT_DENIED",
        '403 `USER_PROJECT_DENIED`: "Caller does not have required permission to use project …"',
        lambda a: a.reason == "USER_PROJECT_DENIED",
        _user_project_denied,
        _sample(403, "USER_PROJECT_DENIED", metadata={"consumer": "projects/QUOTA_PROJECT"}),
    ),
    Row(
        "CONSUMER_INVALID",
        '403 `CONSUMER_INVALID`: "Permission denied on resource project My First Project"',
        lambda a: a.reason == "CONSUMER_INVALID",
        _consumer_invalid,
        _sample(403, "CONSUMER_INVALID", metadata={"consumer": "projects/My First Project"}),
    ),
    Row(
        "BILLING_DISABLED",
        '403 `BILLING_DISABLED`: "This API method requires billing to be enabled"',
        lambda a: a.reason == "BILLING_DISABLED",
        _billing_disabled,
        _sample(403, "BILLING_DISABLED", metadata={"consumer": "projects/PROJECT"}),
    ),
    Row(
        "VPC_SERVICE_CONTROLS",
        "403 `SECURITY_POLICY_VIOLATED` / `VPC_SERVICE_CONTROLS`: \"Request is prohibited by organization's "
        'policy. vpcServiceControlsUniqueIdentifier: …"',
        _is_vpc_sc,
        _vpc_sc,
        _sample(403, "SECURITY_POLICY_VIOLATED", metadata={"uid": "UID"}),
    ),
    Row(
        "ORG_POLICY",
        "403 naming an organization policy constraint (`constraints/…`)",
        lambda a: (
            a.status == 403
            and ("constraints/" in a.message or "organization policy" in a.message.lower())
        ),
        _org_policy,
        _sample(403, None, "Blocked by organization policy constraints/gcp.restrictServiceUsage."),
    ),
    Row(
        "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
        "403 `ACCESS_TOKEN_SCOPE_INSUFFICIENT`",
        lambda a: a.reason == "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
        _scope,
        _sample(403, "ACCESS_TOKEN_SCOPE_INSUFFICIENT"),
    ),
    Row(
        "RESOURCE_EXHAUSTED",
        "429 `RATE_LIMIT_EXCEEDED` (a named quota) or `RESOURCE_EXHAUSTED` (shared capacity)",
        lambda a: a.status == 429 or a.reason in ("RATE_LIMIT_EXCEEDED", "RESOURCE_EXHAUSTED"),
        _quota,
        _sample(
            429,
            "RATE_LIMIT_EXCEEDED",
            metadata={
                "consumer": "projects/PROJECT",
                "quota_metric": "aiplatform.googleapis.com/online_prediction_requests",
                "quota_limit": "OnlinePredictionRequestsPerMinutePerProjectPerRegion",
                "quota_location": "LOCATION",
            },
        ),
        exit_code=TRANSIENT_EXIT,
    ),
    Row(
        "MODEL_NOT_FOUND",
        '404: "Publisher Model `projects/…/publishers/google/models/…` was not found or your project does not '
        'have access to it"',
        _is_model_not_found,
        _model_not_found,
        _sample(
            404,
            None,
            "Publisher Model `projects/PROJECT/locations/LOCATION/publishers/google/models/MODEL` was not "
            "found or your project does not have access to it.",
        ),
    ),
    Row(
        "ENDPOINT_NOT_FOUND",
        '404: "Endpoint `projects/…/endpoints/ID` not found"',
        lambda a: a.status == 404 and "Endpoint" in a.message and "not found" in a.message,
        _endpoint_not_found,
        _sample(404, None, "Endpoint `projects/1/locations/LOCATION/endpoints/ID` not found."),
    ),
    Row(
        "NOT_FOUND",
        "404 with Google's HTML page (no such route)",
        lambda a: a.status == 404,
        _not_found,
        GoogleAnswer(status=404),
    ),
    Row(
        "UNAUTHENTICATED",
        "401 `ACCESS_TOKEN_EXPIRED` / `UNAUTHENTICATED`",
        lambda a: a.status == 401 and a.oauth_error is None,
        _unauthenticated,
        _sample(401, "ACCESS_TOKEN_EXPIRED"),
    ),
    Row(
        "invalid_client",
        'OAuth2 `invalid_client` ("The OAuth client was deleted" / "disabled")',
        lambda a: a.oauth_error == "invalid_client",
        _invalid_client,
        GoogleAnswer(
            status=401, oauth_error="invalid_client", message="The OAuth client was deleted."
        ),
    ),
    Row(
        "INVALID_ARGUMENT",
        "400 `INVALID_ARGUMENT`",
        lambda a: a.status == 400,
        _invalid_argument,
        _sample(400, None, "Invalid JSON payload received."),
    ),
    Row(
        "SERVER_ERROR",
        "500, 502, 503, 504",
        lambda a: a.status >= 500,
        _server_error,
        _sample(503, None, "The service is currently unavailable."),
        exit_code=TRANSIENT_EXIT,
    ),
)
_FALLBACK = Row("OTHER", "anything else", lambda a: True, _other, GoogleAnswer(status=418))


def row_for(answer: GoogleAnswer) -> Row:
    """The table's row for `answer` (the first that applies; a catch-all for what the table does not know)."""
    return next((row for row in TABLE if row.applies(answer)), _FALLBACK)


def row_keys() -> frozenset[str]:
    """Every row's key (what a refusal record may name)."""
    return frozenset(row.key for row in (*TABLE, _FALLBACK))


def advise(answer: GoogleAnswer, situation: Situation | None = None) -> Advice:
    """Why Google refused, and the fix for this principal and project."""
    row = row_for(answer)
    summary, fixes = row.advise(answer, situation or Situation())
    return Advice(
        key=row.key,
        summary=summary,
        fixes=fixes,
        exit_code=row.exit_code,
        link=next(iter(answer.links), None),
    )


def google_message(answer: GoogleAnswer) -> str:
    """Google's own message, one line and bounded (it never holds a token: Google does not echo them)."""
    text = " ".join(answer.message.split())
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "…"


#: The principal and project the docs' rendering of the table names.
README_SITUATION = Situation(
    project="PROJECT",
    location="LOCATION",
    model="google/MODEL",
    principal=Principal("user", "EMAIL"),
)


def readme_section() -> str:
    """docs/check.md's table of "When Vertex says no", rendered from TABLE (a test keeps the page equal to it)."""
    lines = [
        "| Google answers | vertex-env says | the fix it prints (for a user EMAIL and project PROJECT) | exit |",
        "|---|---|---|---|",
    ]
    for row in TABLE:
        advice = advise(row.sample, README_SITUATION)
        fixes = "<br>".join(advice.fixes)
        cells = (row.google_says, advice.summary, fixes, str(row.exit_code))
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def situation_for(
    *,
    project: str | None,
    location: str | None,
    quota_project: str | None,
    principal: Principal | None,
    model: str | None = None,
    catalog: Sequence[str] = (),
    sent_quota_header: bool = False,
) -> Situation:
    """A Situation from keyword arguments (callers in other layers build one without importing dataclasses)."""
    return Situation(
        project=project,
        quota_project=quota_project,
        location=location,
        model=model,
        principal=principal,
        catalog=tuple(catalog),
        sent_quota_header=sent_quota_header,
    )

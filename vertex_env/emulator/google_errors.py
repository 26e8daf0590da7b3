"""The error bodies Google's JSON APIs (IAM, Vertex) answer with: `google.rpc.Status`, with `ErrorInfo` details.

Shapes and wording as Google sends them (an ErrorInfo `reason` is what clients branch on, e.g.
ACCESS_TOKEN_EXPIRED vs ACCESS_TOKEN_TYPE_UNSUPPORTED); the OAuth2/STS bodies live in `faults.py`/`oauth.py`.
The detail types and their fields are googleapis' `google/rpc/error_details.proto` (ErrorInfo, LocalizedMessage,
Help, PreconditionFailure) as AIP-193 orders them; each refusal's wording is quoted from Google's answers as
public reports show them (the source is named beside each one).

`REFUSALS` is the table of what the emulator can refuse per project (the admin API's `refusals`), each with
the status and ErrorInfo reason Google sends.
"""

from __future__ import annotations

from typing import Any

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
MISSING_CREDENTIALS_MESSAGE = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
#: The messages Google sends with a bare status (no ErrorInfo), e.g. for an injected 5xx or 429.
STATUS_MESSAGES = {
    429: "Resource exhausted. Please try again later. Please refer to "
    "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
    500: "Internal error encountered.",
    502: "The service is currently unavailable.",
    503: "The service is currently unavailable.",
    504: "The request timed out. Please try again.",
}
ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
LOCALIZED_MESSAGE_TYPE = "type.googleapis.com/google.rpc.LocalizedMessage"
HELP_TYPE = "type.googleapis.com/google.rpc.Help"
PRECONDITION_FAILURE_TYPE = "type.googleapis.com/google.rpc.PreconditionFailure"
VERTEX_SERVICE = "aiplatform.googleapis.com"
IAM_SERVICE = "iamcredentials.googleapis.com"


def google_error(
    status: int,
    message: str,
    status_name: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The error body Google's JSON APIs (IAM, Vertex) answer with."""
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": status_name or STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return {"error": error}


def status_error(status: int) -> dict[str, Any]:
    """A bare status error in Google's wording (an injected 429 or 5xx)."""
    return google_error(status, STATUS_MESSAGES.get(status, f"HTTP {status}"))


def error_info(reason: str, **metadata: str) -> dict[str, Any]:
    """A `google.rpc.ErrorInfo` detail (domain googleapis.com)."""
    return {
        "@type": ERROR_INFO_TYPE,
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": metadata,
    }


def unauthenticated(reason: str, service: str, method: str) -> dict[str, Any]:
    """401 for a missing (CREDENTIALS_MISSING), expired (ACCESS_TOKEN_EXPIRED) or unknown token."""
    message = (
        MISSING_CREDENTIALS_MESSAGE if reason == "CREDENTIALS_MISSING" else UNAUTHENTICATED_MESSAGE
    )
    return google_error(401, message, details=[error_info(reason, service=service, method=method)])


def scope_insufficient(service: str, method: str) -> dict[str, Any]:
    """403 for a token without a scope the API accepts (cloud-platform)."""
    return google_error(
        403,
        "Request had insufficient authentication scopes.",
        details=[error_info("ACCESS_TOKEN_SCOPE_INSUFFICIENT", service=service, method=method)],
    )


def localized_message(message: str) -> dict[str, Any]:
    """The `google.rpc.LocalizedMessage` detail Google adds beside an ErrorInfo (locale en-US)."""
    return {"@type": LOCALIZED_MESSAGE_TYPE, "locale": "en-US", "message": message}


def help_link(description: str, url: str) -> dict[str, Any]:
    """A `google.rpc.Help` detail with one link."""
    return {"@type": HELP_TYPE, "links": [{"description": description, "url": url}]}


def _refusal(
    status: int,
    message: str,
    info: dict[str, Any],
    *more: dict[str, Any],
) -> dict[str, Any]:
    """Google's current layout of a refusal's details: ErrorInfo, LocalizedMessage, then the rest."""
    return google_error(status, message, details=[info, localized_message(message), *more])


def user_project_denied(project: str, service: str) -> dict[str, Any]:
    """403 when x-goog-user-project names a project the caller may not use (serviceusage.services.use)."""
    url = f"https://console.developers.google.com/iam-admin/iam/project?project={project}"
    message = (
        f"Caller does not have required permission to use project {project}. Grant the caller the "
        "roles/serviceusage.serviceUsageConsumer role, or a custom role with the "
        f"serviceusage.services.use permission, by visiting {url} and then "
        "retry. Propagation of the new permission may take a few minutes."
    )
    return _refusal(
        403,
        message,
        error_info(
            "USER_PROJECT_DENIED",
            consumer=f"projects/{project}",
            service=service,
            containerInfo=project,
        ),
        help_link("Google developer console IAM admin", url),
    )


def service_disabled(project: str, service: str, title: str = "Vertex AI API") -> dict[str, Any]:
    """403 when the API is not enabled in the consumer project.

    As Vertex sent it (2025-11, a public report quoting `Vertex AI API has not been used in project …`), with
    the LocalizedMessage and Help details Google's newer answers carry (the Gemini for Google Cloud API's).
    """
    url = f"https://console.developers.google.com/apis/api/{service}/overview?project={project}"
    message = (
        f"{title} has not been used in project {project} before or it is disabled. Enable it by "
        f"visiting {url} then retry. If you enabled this API recently, wait a few minutes for the "
        "action to propagate to our systems and retry."
    )
    return _refusal(
        403,
        message,
        error_info(
            "SERVICE_DISABLED",
            consumer=f"projects/{project}",
            service=service,
            serviceTitle=title,
            containerInfo=project,
            activationUrl=url,
        ),
        help_link("Google developers console API activation", url),
    )


#: The project of gcloud's own OAuth client: user credentials without a quota project are billed to it, where
#: no API is enabled for the caller (the consumer Google names in the refusal below).
GCLOUD_CLIENT_PROJECT_NUMBER = "764086051850"


def quota_project_required(service: str) -> dict[str, Any]:
    """403 for user credentials (gcloud's ADC login) without a quota project, on an API that needs one.

    Google's "… requires a quota project, which is not set by default" with reason SERVICE_DISABLED and the
    consumer gcloud's OAuth client project (as Firebase's and Identity Toolkit's public traces show it).
    """
    message = (
        "Your application is authenticating by using local Application Default Credentials. The "
        f"{service} API requires a quota project, which is not set by default. To learn how to set "
        "your quota project, see https://cloud.google.com/docs/authentication/adc-troubleshooting/user-creds ."
    )
    return _refusal(
        403,
        message,
        error_info(
            "SERVICE_DISABLED",
            consumer=f"projects/{GCLOUD_CLIENT_PROJECT_NUMBER}",
            service=service,
        ),
    )


def consumer_invalid(project: str, service: str) -> dict[str, Any]:
    """403 when the project named is not a project (a display name where the id belongs, a deleted one)."""
    message = f"Permission denied on resource project {project}."
    return _refusal(
        403,
        message,
        error_info(
            "CONSUMER_INVALID",
            consumer=f"projects/{project}",
            service=service,
            containerInfo=project,
        ),
        help_link("Google developers console", "https://console.developers.google.com"),
    )


def billing_disabled(project: str, service: str) -> dict[str, Any]:
    """403 when the consumer project has no billing account (Google's "#project" wording)."""
    url = f"https://console.developers.google.com/billing/enable?project={project}"
    message = (
        f"This API method requires billing to be enabled. Please enable billing on project #{project} "
        f"by visiting {url} then retry. If you enabled billing for this project recently, wait a few "
        "minutes for the action to propagate to our systems and retry."
    )
    return _refusal(
        403,
        message,
        error_info(
            "BILLING_DISABLED",
            consumer=f"projects/{project}",
            service=service,
            containerInfo=project,
        ),
        help_link("Google developers console billing", url),
    )


def iam_permission_denied(permission: str, resource: str) -> dict[str, Any]:
    """403 when the principal lacks an IAM permission on the resource.

    Domain `aiplatform.googleapis.com`, metadata permission and resource, as Vertex sent it (a public report of
    2025-12: `Permission 'aiplatform.endpoints.predict' denied on resource
    '//aiplatform.googleapis.com/projects/…/locations/global/publishers/google/models/…' (or it may not
    exist).`; on the OpenAI-compatible path the resource is `…/endpoints/openapi`).
    """
    message = (
        f"Permission '{permission}' denied on resource '//{VERTEX_SERVICE}/{resource}' "
        "(or it may not exist)."
    )
    return google_error(
        403,
        message,
        details=[
            {
                "@type": ERROR_INFO_TYPE,
                "reason": "IAM_PERMISSION_DENIED",
                "domain": VERTEX_SERVICE,
                "metadata": {"permission": permission, "resource": resource},
            }
        ],
    )


def generate_access_token_denied() -> dict[str, Any]:
    """IAM Credentials' 403 when the caller may not mint tokens for the service account (no Token Creator)."""
    return google_error(
        403,
        "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
        details=[
            {
                "@type": ERROR_INFO_TYPE,
                "reason": "IAM_PERMISSION_DENIED",
                "domain": "iam.googleapis.com",
                "metadata": {"permission": "iam.serviceAccounts.getAccessToken"},
            }
        ],
    )


def rate_limit_exceeded(project: str, project_number: str, location: str) -> dict[str, Any]:
    """429 when a per-minute quota of the consumer project is used up, with the quota it names.

    Google's shape for a quota refusal (`Quota exceeded for quota metric … and limit … of service … for
    consumer 'project_number:N'`, ErrorInfo RATE_LIMIT_EXCEEDED with the quota in its metadata, and a Help link
    to request more), here with Vertex's online-prediction quota.
    """
    metric = f"{VERTEX_SERVICE}/online_prediction_requests"
    limit = "OnlinePredictionRequestsPerMinutePerProjectPerRegion"
    message = (
        "Quota exceeded for quota metric 'Online prediction requests' and limit 'Online prediction "
        f"requests per minute per region' of service '{VERTEX_SERVICE}' for consumer "
        f"'project_number:{project_number}'."
    )
    return google_error(
        429,
        message,
        details=[
            error_info(
                "RATE_LIMIT_EXCEEDED",
                consumer=f"projects/{project_number}",
                quota_limit=limit,
                quota_limit_value="0",
                quota_location=location,
                quota_metric=metric,
                quota_unit="1/min/{project}/{region}",
                service=VERTEX_SERVICE,
                containerInfo=project,
            ),
            help_link(
                "Request a higher quota limit.",
                "https://cloud.google.com/docs/quotas/help/request_increase",
            ),
        ],
    )


def vpc_service_controls(project_number: str, service: str, uid: str) -> dict[str, Any]:
    """403 when a VPC Service Controls perimeter refuses the request (SECURITY_POLICY_VIOLATED).

    PreconditionFailure VPC_SERVICE_CONTROLS then ErrorInfo with the `uid` an administrator searches the audit
    log for, as a public trace of Google's list-wrapped answer shows it.
    """
    return google_error(
        403,
        f"Request is prohibited by organization's policy. vpcServiceControlsUniqueIdentifier: {uid}",
        details=[
            {
                "@type": PRECONDITION_FAILURE_TYPE,
                "violations": [{"type": "VPC_SERVICE_CONTROLS", "description": uid}],
            },
            error_info(
                "SECURITY_POLICY_VIOLATED",
                consumer=f"projects/{project_number}",
                service=service,
                uid=uid,
            ),
        ],
    )


#: Vertex's page for a model it does not serve where it was asked for.
MODEL_VERSIONS_URL = "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions"


def publisher_model_not_found(project: str, location: str, model: str) -> dict[str, Any]:
    """404 for a model Vertex does not know, does not serve in the location, or without its publisher.

    Verbatim from Vertex's answers (public traces: `Publisher Model
    `projects/…/locations/us-central1/publishers/google/models/gemini-2.5-flash-image-preview` was not found
    or your project does not have access to it. Please ensure you are using a valid model version. …`).
    """
    publisher, _, name = model.rpartition("/")
    resource = (
        f"projects/{project}/locations/{location}/publishers/{publisher or 'google'}/models/{name}"
    )
    return google_error(
        404,
        f"Publisher Model `{resource}` was not found or your project does not have access to it. "
        "Please ensure you are using a valid model version. For more information, see: "
        f"{MODEL_VERSIONS_URL}",
    )


def endpoint_not_found(project_number: str, location: str, endpoint: str) -> dict[str, Any]:
    """404 for an endpoint ID that does not exist in the project and location.

    The wording follows Vertex's `… not found` for a resource name; no public trace of this exact answer on the
    OpenAI-compatible path was found, so only its status (404 NOT_FOUND) is Google's for certain.
    """
    return google_error(
        404,
        f"Endpoint `projects/{project_number}/locations/{location}/endpoints/{endpoint}` not found.",
    )


def openai_wrapped(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Vertex's OpenAI-compatible paths answer errors as a list holding the error object.

    Public traces of Vertex's answers there: `[{'error': {'code': 404, 'message': 'Publisher Model
    `projects/740989871600/locations/us-ce…` was not found …'}}]` (genkit-ai/genkit issue 4688) and
    `[{"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "Permission
    'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/projects/p1/locations/global/
    endpoints/openapi' (or it may not exist)."}}]`. With it, openai-python reports only "Error code: 404" and
    `e.body["error"]` raises: code written against the emulator must cope, as on Vertex.
    """
    return [body]


#: GFE's page for a path no Google API serves (e.g. Vertex's `…/endpoints/openapi/models`), byte for byte as a
#: public trace of `googleads.googleapis.com` shows it (2026-07, `server: ESF`, text/html; charset=UTF-8).
NOT_FOUND_HTML = (
    "<!DOCTYPE html>\n"
    "<html lang=en>\n"
    "  <meta charset=utf-8>\n"
    '  <meta name=viewport content="initial-scale=1, minimum-scale=1, width=device-width">\n'
    "  <title>Error 404 (Not Found)!!1</title>\n"
    "  <style>\n"
    "    *{margin:0;padding:0}html,code{font:15px/22px arial,sans-serif}html{background:#fff;color:#222;"
    "padding:15px}body{margin:7% auto 0;max-width:390px;min-height:180px;padding:30px 0 15px}* > body"
    "{background:url(//www.google.com/images/errors/robot.png) 100% 5px no-repeat;padding-right:205px}"
    "p{margin:11px 0 22px;overflow:hidden}ins{color:#777;text-decoration:none}a img{border:0}@media "
    "screen and (max-width:772px){body{background:none;margin-top:0;max-width:none;padding-right:0}}"
    "#logo{background:url(//www.google.com/images/branding/googlelogo/1x/googlelogo_color_150x54dp.png) "
    "no-repeat;margin-left:-5px}@media only screen and (min-resolution:192dpi){#logo{background:url("
    "//www.google.com/images/branding/googlelogo/2x/googlelogo_color_150x54dp.png) no-repeat 0% 0%/100% "
    "100%;-moz-border-image:url(//www.google.com/images/branding/googlelogo/2x/googlelogo_color_150x54dp"
    ".png) 0}}@media only screen and (-webkit-min-device-pixel-ratio:2){#logo{background:url(//www.google"
    ".com/images/branding/googlelogo/2x/googlelogo_color_150x54dp.png) no-repeat;-webkit-background-size:"
    "100% 100%}}#logo{display:inline-block;height:54px;width:150px}\n"
    "  </style>\n"
    "  <a href=//www.google.com/><span id=logo aria-label=Google></span></a>\n"
    "  <p><b>404.</b> <ins>That\u2019s an error.</ins>\n"
    "  <p>The requested URL <code>{path}</code> was not found on this server.  "
    "<ins>That\u2019s all we know.</ins>\n"
)


def not_found_html(path: str) -> str:
    """Google's HTML 404 page for `path` (HTML-escaped, as GFE does)."""
    import html

    return NOT_FOUND_HTML.replace("{path}", html.escape(path, quote=False))


#: What the emulator can refuse per project (admin API `POST /__emulator/refusals`), in the order Vertex checks
#: them: name -> (HTTP status, Google's status, ErrorInfo reason, which project it keys on and when it applies).
REFUSALS: dict[str, tuple[int, str, str, str]] = {
    "USER_PROJECT_DENIED": (
        403,
        "PERMISSION_DENIED",
        "USER_PROJECT_DENIED",
        "the project named in x-goog-user-project",
    ),
    "CONSUMER_INVALID": (
        403,
        "PERMISSION_DENIED",
        "CONSUMER_INVALID",
        "the URL's project (always, for a name no project can have, such as 'My First Project')",
    ),
    "QUOTA_PROJECT_REQUIRED": (
        403,
        "PERMISSION_DENIED",
        "SERVICE_DISABLED",
        "the URL's project, for user credentials (gcloud login) sent without x-goog-user-project",
    ),
    "SERVICE_DISABLED": (
        403,
        "PERMISSION_DENIED",
        "SERVICE_DISABLED",
        "the consumer: x-goog-user-project, else the URL's project",
    ),
    "BILLING_DISABLED": (
        403,
        "PERMISSION_DENIED",
        "BILLING_DISABLED",
        "the consumer: x-goog-user-project, else the URL's project",
    ),
    "VPC_SERVICE_CONTROLS": (
        403,
        "PERMISSION_DENIED",
        "SECURITY_POLICY_VIOLATED",
        "the URL's project (inside a perimeter the caller is outside of)",
    ),
    "IAM_PERMISSION_DENIED": (
        403,
        "PERMISSION_DENIED",
        "IAM_PERMISSION_DENIED",
        "the URL's project (the principal lacks aiplatform.endpoints.predict / .list)",
    ),
    "RESOURCE_EXHAUSTED": (
        429,
        "RESOURCE_EXHAUSTED",
        "RATE_LIMIT_EXCEEDED",
        "the consumer: x-goog-user-project, else the URL's project",
    ),
}

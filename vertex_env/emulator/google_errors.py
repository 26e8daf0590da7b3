"""The error bodies Google's JSON APIs (IAM, Vertex) answer with: `google.rpc.Status`, with `ErrorInfo` details.

Shapes and wording as Google sends them (an ErrorInfo `reason` is what clients branch on, e.g.
ACCESS_TOKEN_EXPIRED vs ACCESS_TOKEN_TYPE_UNSUPPORTED); the OAuth2/STS bodies live in `faults.py`/`oauth.py`.
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


def user_project_denied(project: str, service: str) -> dict[str, Any]:
    """403 when x-goog-user-project names a project the caller may not use (serviceusage.services.use)."""
    return google_error(
        403,
        f"Caller does not have required permission to use project {project}. Grant the caller the "
        "roles/serviceusage.serviceUsageConsumer role, or a custom role with the "
        "serviceusage.services.use permission, by visiting "
        f"https://console.developers.google.com/iam-admin/iam/project?project={project} and then "
        "retry. Propagation of the new permission may take a few minutes.",
        details=[
            error_info("USER_PROJECT_DENIED", consumer=f"projects/{project}", service=service)
        ],
    )


def service_disabled(project: str, service: str, title: str = "Vertex AI API") -> dict[str, Any]:
    """403 when the API is not enabled in the consumer project."""
    url = f"https://console.developers.google.com/apis/api/{service}/overview?project={project}"
    return google_error(
        403,
        f"{title} has not been used in project {project} before or it is disabled. Enable it by "
        f"visiting {url} then retry. If you enabled this API recently, wait a few minutes for the "
        "action to propagate to our systems and retry.",
        details=[
            error_info(
                "SERVICE_DISABLED",
                consumer=f"projects/{project}",
                service=service,
                serviceTitle=title,
                containerInfo=project,
                activationUrl=url,
            )
        ],
    )

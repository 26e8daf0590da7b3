"""The error bodies Google's JSON APIs (IAM, Vertex, the metadata server's JSON) answer with: `google.rpc.Status`."""

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


def google_error(status: int, message: str, status_name: str | None = None) -> dict[str, Any]:
    """The error body Google's JSON APIs (IAM, Vertex) answer with."""
    return {
        "error": {
            "code": status,
            "message": message,
            "status": status_name or STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }

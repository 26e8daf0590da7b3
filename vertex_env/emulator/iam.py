"""IAM Credentials: `generateAccessToken` (service account impersonation) and the allowedLocations lookup.

Strict as Google is: a lifetime above 3600 s is refused unless the org policy
iam.allowServiceAccountCredentialLifetimeExtension lists the account (config `lifetime_extension`), each
delegate must name a service account (`projects/-/serviceAccounts/EMAIL_OR_UNIQUE_ID`, or the bare email), and a
caller without Token Creator on an account in config `impersonation_denied` gets 403 IAM_PERMISSION_DENIED.
"""

from __future__ import annotations

import datetime
import re

from aiohttp import web

from vertex_env.emulator import google_errors
from vertex_env.emulator.google_errors import IAM_SERVICE, google_error
from vertex_env.emulator.state import LIFETIME_EXTENSION_POLICY, EmulatorState, bearer_value

IAM_PATH = re.compile(
    r"^/v1/projects/-/serviceAccounts/(?P<email>[^/:]+)(?P<rest>:[A-Za-z]+|/allowedLocations)$"
)
_LIFETIME = re.compile(r"^(?P<seconds>\d+(?:\.\d+)?)s$")
_ACCOUNT = re.compile(
    r"^(?:projects/-/serviceAccounts/)?(?:[^@/\s]+@[^@/\s]+\.[^@/\s]+|[0-9]{1,30})$"
)
_METHOD = "google.iam.credentials.v1.IAMCredentials.GenerateAccessToken"


async def generate_access_token(
    state: EmulatorState, request: web.Request, token_id: list[int]
) -> web.StreamResponse:
    match = IAM_PATH.match(request.path)
    assert match is not None  # classify() said so
    email, rest = match["email"], match["rest"]
    authorization = request.headers.get("Authorization", "")
    caller = state.caller(authorization)
    if rest == "/allowedLocations":
        # google-auth's regional access boundary lookup; this answer is Google's "no boundary".
        return web.json_response({"locations": [], "encodedLocations": "0x0"})
    if caller is None:
        value = bearer_value(authorization)
        record = state.token_record(value) if value else None
        reason = (
            "CREDENTIALS_MISSING"
            if value is None
            else "ACCESS_TOKEN_TYPE_UNSUPPORTED"
            if record is None
            else "ACCESS_TOKEN_EXPIRED"
        )
        return web.json_response(
            google_errors.unauthenticated(reason, IAM_SERVICE, _METHOD), status=401
        )
    token_id.append(caller.id)
    denied = state.config.impersonation_denied
    if rest == ":generateAccessToken" and ("*" in denied or email in denied):
        # The caller lacks roles/iam.serviceAccountTokenCreator on the account (or it does not exist).
        return web.json_response(google_errors.generate_access_token_denied(), status=403)
    if rest != ":generateAccessToken" or request.method != "POST":
        return web.json_response(
            google_error(404, f"The emulator does not serve {rest}"), status=404
        )
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return web.json_response(google_error(400, "Invalid JSON payload received."), status=400)
    scopes = body.get("scope")
    if isinstance(scopes, str):
        scopes = [scopes]
    if not scopes or not isinstance(scopes, list):
        return web.json_response(google_error(400, "Scope is required."), status=400)
    lifetime_text = str(body.get("lifetime") or "3600s")
    parsed = _LIFETIME.match(lifetime_text)
    if parsed is None:
        return web.json_response(
            google_error(400, f"Invalid value at 'lifetime' ({lifetime_text})."), status=400
        )
    lifetime = float(parsed["seconds"])
    max_lifetime = state.config.max_lifetime
    if lifetime > max_lifetime or lifetime <= 0:
        return web.json_response(
            google_error(
                400,
                f"The lifetime of the token must be between 1s and {max_lifetime}s; "
                f"requested {lifetime_text}.",
            ),
            status=400,
        )
    limit = state.config.lifetime_limit(email)
    if lifetime > limit:
        return web.json_response(
            google_error(
                400,
                f"Requested lifetime {lifetime_text} exceeds the maximum of {limit}s for service "
                f"account {email}. Lifetimes up to {max_lifetime}s need the organization policy "
                f"constraints/{LIFETIME_EXTENSION_POLICY} to list the account.",
            ),
            status=400,
        )
    delegates = body.get("delegates") or []
    if not isinstance(delegates, list):
        return web.json_response(
            google_error(400, "Invalid value at 'delegates': a list of service accounts."),
            status=400,
        )
    for delegate in delegates:
        if not isinstance(delegate, str) or not _ACCOUNT.match(delegate):
            return web.json_response(
                google_error(
                    400,
                    f"Invalid form of account ID {delegate}. Should be "
                    "[Gaia ID |Email |Unique ID |] of the account",
                ),
                status=400,
            )
    value, issued = state.issue_token(
        "impersonation",
        principal=f"serviceAccount:{email}",
        scopes=[str(s) for s in scopes],
        lifetime=lifetime,
    )
    return web.json_response({"accessToken": value, "expireTime": rfc3339(issued.expires_at)})


def rfc3339(epoch_seconds: float) -> str:
    """UTC time as `2024-01-02T03:04:05Z` — whole seconds, the exact form google-auth's IAM parser accepts."""
    moment = datetime.datetime.fromtimestamp(int(epoch_seconds), tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

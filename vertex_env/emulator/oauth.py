"""OAuth2 and STS: Google's token endpoint (refresh token, JWT bearer) and the STS token exchange and refresh.

Bodies and errors follow RFC 6749 as Google answers them: `{"error", "error_description"}` with 400/401.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from vertex_env.config.values import CLOUD_PLATFORM_SCOPE
from vertex_env.emulator.faults import OAUTH_ERRORS, EmulatorError
from vertex_env.emulator.state import EmulatorState, IssuedToken, rsa_verifier

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
#: Subject token types STS parses as a JWT (OIDC ID tokens).
_JWT_TOKEN_TYPES = frozenset(
    {"urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token"}
)

# Audiences google-auth puts in a JWT-bearer assertion (it always uses the first, whatever token_uri says).
_GOOGLE_TOKEN_AUDIENCES = frozenset(
    {
        "https://oauth2.googleapis.com/token",
        "https://accounts.google.com/o/oauth2/token",
        "https://www.googleapis.com/oauth2/v4/token",
    }
)
OAUTH_TOKEN_PATHS = frozenset({"/token", "/o/oauth2/token", "/oauth2/v4/token"})
STS_EXCHANGE_PATHS = frozenset({"/v1/token"})
STS_REFRESH_PATHS = frozenset({"/v1/oauthtoken", "/v1/oauth/token"})
# What STS accepts as `audience`: a workload or workforce identity provider's full resource name.
_PROVIDER_AUDIENCE = re.compile(
    r"^//iam\.[a-z0-9.-]+/(?:projects/[0-9]+/locations/global/workloadIdentityPools/[^/]+"
    r"|locations/global/workforcePools/[^/]+)/providers/[^/]+$"
)
# Google's refusal of a JWT-bearer assertion signed for more than an hour.
_MAX_ASSERTION_SECONDS = 3600
_CLOCK_SKEW_SECONDS = 300


async def token(state: EmulatorState, request: web.Request) -> web.StreamResponse:
    if request.method != "POST":
        return oauth_error(405, "invalid_request", "The token endpoint takes POST.")
    form = await form_or_json(request)
    path = request.path
    grant = form.get("grant_type", "")
    if path in STS_EXCHANGE_PATHS:
        return _sts_exchange(state, form)
    if path in STS_REFRESH_PATHS:
        return _sts_refresh(state, request, form)
    if grant == "refresh_token":
        missing = [k for k in ("refresh_token", "client_id", "client_secret") if not form.get(k)]
        if missing:
            state.count("token_rejected")
            return oauth_error(400, "invalid_request", f"Missing required parameter: {missing[0]}")
        if _client_unknown(state, form["client_id"]):
            state.count("token_rejected")
            return oauth_error(401, "invalid_client", "The OAuth client was not found.")
        scopes = form.get("scope", "").split() or [CLOUD_PLATFORM_SCOPE]
        value, issued = state.issue_token(
            "refresh_token", principal=f"user:{form['client_id']}", scopes=scopes
        )
        return _token_response(value, issued)
    if grant == JWT_BEARER_GRANT:
        host = request.host
        own = frozenset({f"http://{host}{p}" for p in OAUTH_TOKEN_PATHS})
        try:
            claims = verify_assertion(state, form.get("assertion", ""), own_audiences=own)
        except EmulatorError as err:
            state.count("token_rejected")
            return oauth_error(400, "invalid_grant", str(err))
        if claims.get("target_audience"):
            return oauth_error(400, "invalid_request", "The emulator does not issue ID tokens.")
        scopes = str(claims.get("scope", "")).split()
        if not scopes:
            state.count("token_rejected")
            return oauth_error(
                400, "invalid_scope", "Invalid OAuth scope or ID token audience provided."
            )
        principal = f"serviceAccount:{claims.get('sub') or claims['iss']}"
        value, issued = state.issue_token("jwt_bearer", principal=principal, scopes=scopes)
        return _token_response(value, issued)
    state.count("token_rejected")
    return oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")


def _sts_exchange(state: EmulatorState, form: Mapping[str, str]) -> web.StreamResponse:
    if form.get("grant_type") != TOKEN_EXCHANGE_GRANT:
        state.count("token_rejected")
        return oauth_error(400, "unsupported_grant_type", "Unsupported grant_type.")
    for name in ("subject_token", "subject_token_type"):
        if not form.get(name):
            state.count("token_rejected")
            return oauth_error(400, "invalid_request", f"Missing required parameter: {name}")
    if not _PROVIDER_AUDIENCE.match(form.get("audience", "")):
        state.count("token_rejected")
        return web.json_response(OAUTH_ERRORS["invalid_request"], status=400)
    if form["subject_token_type"] in _JWT_TOKEN_TYPES and not _looks_like_jwt(
        form["subject_token"]
    ):
        # STS reads an OIDC subject token before anything else about it (public traces: a token with HTTP
        # chunk markers, an access token passed where the ID token belongs).
        state.count("token_rejected")
        return oauth_error(400, "invalid_grant", "Unable to parse the ID Token.")
    scopes = form.get("scope", "").split() or [CLOUD_PLATFORM_SCOPE]
    value, issued = state.issue_token(
        "token_exchange", principal=f"principal:{form.get('audience', '')}", scopes=scopes
    )
    return web.json_response(
        {
            "access_token": value,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
        }
    )


def _sts_refresh(
    state: EmulatorState, request: web.Request, form: Mapping[str, str]
) -> web.StreamResponse:
    client_id, client_secret = _basic_auth(request.headers.get("Authorization", ""))
    client_id = client_id or form.get("client_id", "")
    client_secret = client_secret or form.get("client_secret", "")
    if form.get("grant_type") != "refresh_token":
        state.count("token_rejected")
        return oauth_error(400, "unsupported_grant_type", "Unsupported grant_type.")
    if not form.get("refresh_token"):
        state.count("token_rejected")
        return oauth_error(400, "invalid_request", "Missing required parameter: refresh_token")
    if not client_id or not client_secret or _client_unknown(state, client_id):
        state.count("token_rejected")
        return oauth_error(401, "invalid_client", "The OAuth client was not found.")
    value, issued = state.issue_token(
        "sts_refresh_token",
        principal=f"principalSet:{client_id}",
        scopes=[CLOUD_PLATFORM_SCOPE],
    )
    return _token_response(value, issued)


def _client_unknown(state: EmulatorState, client_id: str) -> bool:
    """Whether config invalid_clients says the OAuth client does not exist (deleted, or a typo)."""
    unknown = state.config.invalid_clients
    return "*" in unknown or client_id in unknown


def _looks_like_jwt(token: str) -> bool:
    """Three base64url segments whose first two are JSON objects (the signature is the provider's business)."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        return False
    try:
        header, claims = (json.loads(_b64decode(part)) for part in parts[:2])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and isinstance(claims, dict)


def verify_assertion(
    state: EmulatorState, assertion: str, *, own_audiences: frozenset[str]
) -> dict[str, Any]:
    """The claims of a valid JWT-bearer assertion; EmulatorError with Google's wording otherwise."""
    try:
        header_b64, payload_b64, signature_b64 = assertion.split(".")
        header = json.loads(_b64decode(header_b64))
        claims = json.loads(_b64decode(payload_b64))
        signature = _b64decode(signature_b64)
    except (ValueError, binascii.Error):
        raise EmulatorError(
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
        ) from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise EmulatorError("Invalid JWT.")
    if header.get("alg") != "RS256":
        raise EmulatorError("Invalid JWT: unsupported signing algorithm.")
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise EmulatorError("Invalid JWT: No issuer.")
    audience = claims.get("aud")
    if audience not in _GOOGLE_TOKEN_AUDIENCES and audience not in own_audiences:
        raise EmulatorError("Invalid JWT: Failed audience check.")
    now = state.now()
    try:
        issued_at = float(claims["iat"])
        expires_at = float(claims["exp"])
    except (KeyError, TypeError, ValueError):
        raise EmulatorError(
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
        ) from None
    if (
        expires_at < now - _CLOCK_SKEW_SECONDS
        or issued_at > now + _CLOCK_SKEW_SECONDS
        or expires_at - issued_at > _MAX_ASSERTION_SECONDS
    ):
        raise EmulatorError(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
            "Check your iat and exp values in the JWT claim."
        )
    keys = state.public_keys(issuer)
    require = state.config.require_known_keys
    if not keys:
        if require:
            raise EmulatorError("Invalid JWT Signature.")
        return claims
    key_id = header.get("kid")
    candidates = (
        [keys[key_id]] if isinstance(key_id, str) and key_id in keys else list(keys.values())
    )
    message = f"{header_b64}.{payload_b64}".encode("ascii")
    if not any(rsa_verifier(pem).verify(message, signature) for pem in candidates):
        raise EmulatorError("Invalid JWT Signature.")
    return claims


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


async def form_or_json(request: web.Request) -> dict[str, str]:
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    form = await request.post()
    return {k: str(v) for k, v in form.items()}


def _basic_auth(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
    except (ValueError, binascii.Error):
        return "", ""
    return user, password


def _token_response(value: str, issued: IssuedToken) -> web.StreamResponse:
    return web.json_response(
        {
            "access_token": value,
            "expires_in": issued.expires_in,
            "token_type": "Bearer",
            "scope": " ".join(issued.scopes),
        }
    )


def oauth_error(status: int, error: str, description: str) -> web.StreamResponse:
    return web.json_response({"error": error, "error_description": description}, status=status)

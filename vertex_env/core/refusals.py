"""google-auth's exceptions → one readable line in vertex-env's error family (errors.py), with its exit code.

google-auth raises several unrelated exceptions from `refresh()`: `RefreshError` (OAuth2 token endpoint, IAM,
metadata), `OAuthError` (every STS exchange: workload and workforce identity), `TransportError` (network),
`DefaultCredentialsError` (a credential it cannot use), and plain `ValueError`/`TypeError` (a key it cannot
sign with, or a body that is not a token response). Their text is a Python tuple or a urllib3 retry report.

The classification uses evidence, not guesses: the transport (`vertex_env.core.transport.RoutedRequest`) records
the last URL asked for and the last answer. No answer from Google means the problem is local (exit 5, with
google-auth's own reason); Google's `error` / `error_description` decide between reauth (6), invalid_grant (7),
transient (8) and refused (12).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from vertex_env.errors import (
    AuthError,
    CredentialFileError,
    InvalidGrantError,
    ReauthRequiredError,
    TransientError,
    VertexEnvError,
)

_TOKENISH = re.compile(
    r"(ya29\.[A-Za-z0-9._~+/=-]+|eyJ[A-Za-z0-9._-]{20,}|1//[A-Za-z0-9._-]{10,}|GOCSPX-[A-Za-z0-9_-]+)"
)
# `client_secret=…`, `"refresh_token": "…"`, `assertion=…` as a token endpoint may echo a request back.
_SECRET_FIELD = re.compile(
    r"""(?P<key>\b(?:client_secret|refresh_token|access_token|id_token|subject_token|actor_token|assertion|"""
    r"""password|private_key|rapt_token|code)\b\\?["']?\s*[=:]\s*\\?["']?)(?P<value>(?![0-9]+(?:[\s"'&,;)}\\]|$))[^\s"'&,;)}\\]+)""",
    re.IGNORECASE,
)
_RETRYABLE_ERRORS = frozenset(
    {"server_error", "temporarily_unavailable", "internal_failure", "rate_limit_exceeded"}
)
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_MAX_TEXT = 240
#: A metadata server's refusal is the only reason given (no service account attached, a GKE service account not
#: bound): it is kept whole up to this length, past google-auth's URL that comes first.
_MAX_REASON = 1000
#: What Google's token endpoint says of a JWT assertion whose iat/exp this machine's clock put off.
_CLOCK_HINTS = (
    "short-lived token",
    "iat",
    "exp claim",
    "token used too early",
    "token used too late",
)
_INVALID_GRANT_HINTS = {
    "authorized_user": "run `gcloud auth application-default login`",
    "service_account": "the key may be deleted or disabled: create a new key for the service account",
    "external_account": "check the subject token and the workload identity provider's audience and conditions",
    "external_account_authorized_user": "run `gcloud auth application-default login --login-config=…` again",
}


def redact(text: str) -> str:
    """Remove anything shaped like an access token, JWT, refresh token or client secret from a message."""
    text = _SECRET_FIELD.sub(lambda m: f"{m.group('key')}[redacted]", text)
    return _TOKENISH.sub("[redacted]", text)


def _one_line(text: str, limit: int = _MAX_TEXT) -> str:
    text = " ".join(redact(text).split())
    return text if len(text) <= limit else text[:limit] + "…"


def _as_mapping(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, (str, bytes)):
        try:
            parsed = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def google_error(err: BaseException) -> tuple[str | None, str | None, str | None]:
    """(error, error_description, error_subtype) from whatever body google-auth put in the exception's args:
    an OAuth2/STS body `{"error": "invalid_grant", …}` or a Google API body `{"error": {"status", "message"}}`."""
    return _body_error(*err.args)


def _body_error(*bodies: Any) -> tuple[str | None, str | None, str | None]:
    for arg in bodies:
        data = _as_mapping(arg)
        if not data:
            continue
        error = data.get("error")
        if isinstance(error, dict):  # Google API error (IAM, metadata)
            status = error.get("status") or error.get("code")
            message = error.get("message")
            return (
                str(status) if status is not None else None,
                str(message) if message else None,
                None,
            )
        if isinstance(error, str):
            desc = data.get("error_description")
            subtype = data.get("error_subtype")
            return error, (str(desc) if desc else None), (str(subtype) if subtype else None)
    return None, None, None


def network_reason(text: str) -> str:
    """What a urllib3/requests failure report means, in a few words."""
    lowered = text.lower()
    if "read timed out" in lowered or ("timeouterror" in lowered and "read" in lowered):
        return "timed out waiting for an answer"
    if "timed out" in lowered or "connecttimeout" in lowered:
        return "connection timed out"
    if (
        "nameresolution" in lowered
        or "name or service not known" in lowered
        or "failed to resolve" in lowered
    ):
        return "cannot resolve the host name"
    errno = re.search(r"\[Errno -?\d+\] ([^'\"()\]]+)", text)
    if errno:
        return errno.group(1).strip().rstrip(".").lower()
    if "remotedisconnected" in lowered or "connection aborted" in lowered:
        return "the connection was closed without an answer"
    if "connection reset" in lowered:
        return "the connection was reset"
    if "ssl" in lowered:
        return "TLS handshake failed"
    first = re.split(r"\(Caused by|: HTTP", text)[0]
    return _one_line(first)


def readable(err: BaseException) -> str:
    """One line for any google-auth exception: Google's error and description, else its first message."""
    error, desc, _subtype = google_error(err)
    if error:
        return _one_line(f"{error}: {desc}" if desc else error)
    text = str(err.args[0]) if err.args else str(err)
    if "Max retries exceeded" in text or ("Connection" in text and "Pool" in text):
        return network_reason(text)
    if text.startswith("Error code "):  # google-auth's OAuthError rendering of a non-JSON body
        text = text[len("Error code ") :]
    return _one_line(text) or type(err).__name__


def _host(url: str | None) -> str | None:
    return urlsplit(url).hostname if url else None


def _describe_local(err: BaseException, info: dict[str, Any] | None) -> str:
    """google-auth's own reason for refusing a credential before it asked Google anything."""
    if info is not None and info.get("type") == "service_account":
        kind = _private_key_kind(str(info.get("private_key") or ""))
        if kind and kind != "RSA":
            return (
                f"the service account key is an {kind} private key; Google's OAuth2 token endpoint "
                "takes RS256-signed assertions only (create a JSON key with "
                "`gcloud iam service-accounts keys create`)"
            )
    text = readable(err)
    return text if isinstance(err, Exception) and text else type(err).__name__


def _private_key_kind(pem: str) -> str | None:
    if not pem:
        return None
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ImportError, ValueError, TypeError):
        return None
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "EC"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "Ed25519"
    return type(key).__name__


def classify(
    err: BaseException,
    *,
    label: str,
    credential_type: str,
    request: Any = None,
    info: dict[str, Any] | None = None,
    impersonate: str | None = None,
) -> VertexEnvError:
    """The VertexEnvError for an exception google-auth raised while minting a token.

    `request` is the RoutedRequest the refresh used (its `last_url` / `last_response` tell whether Google
    answered); `label` names the credential (its path or keyring entry) for local problems; `info` is the
    credential's JSON (its own token source, its principal for the fix), `impersonate` the target account.
    """
    import google.auth.exceptions as gexc

    from vertex_env.config.routing import is_google_host

    last = getattr(request, "last_response", None)
    last_host = _host(last[0]) if last else None
    # The credential's own source (AWS's metadata service at 169.254.169.254, a url-sourced OIDC token) is
    # never Google, whatever address it shares with Google's metadata server.
    own_hosts = _credential_source_hosts(info)
    google_answered = (
        last is not None
        and last_host is not None
        and is_google_host(last_host)
        and last_host not in own_hosts
    )
    status: int | None = last[1] if google_answered and last is not None else None

    if isinstance(err, (gexc.TransportError, gexc.TimeoutError)) and not (
        last is not None and last_host in own_hosts and last[1] >= 400
    ):
        asked = _host(getattr(request, "last_url", None))
        reason = network_reason(str(err))
        if asked and (not is_google_host(asked) or asked in own_hosts):
            return CredentialFileError(
                f"the credential's own token source {asked} did not answer ({reason}); "
                f"check the credential_source of {label} and the environment it expects"
            )
        where = f"Google ({asked})" if asked else "Google"
        emulator = getattr(request, "emulator", None)
        if (
            emulator
        ):  # VERTEX_ENV_EMULATOR_HOST routes every Google call there: Google was never asked
            where = f"the emulator at {emulator}" + (f" (standing in for {asked})" if asked else "")
        return TransientError(f"could not reach {where} to refresh the token: {reason}")

    if last is not None and last_host in own_hosts and last[1] >= 400:
        return CredentialFileError(
            f"the credential's own token source {last_host} refused (HTTP {last[1]}): "
            f"{_body_text(last[2]) or readable(err)}; check the credential_source of {label} and the "
            "environment it expects (this is not Google's answer)"
        )

    if not isinstance(
        err, gexc.GoogleAuthError
    ):  # ValueError, TypeError, KeyError from google-auth
        if google_answered and last is not None and _as_mapping(last[2]) is None:
            return TransientError(
                f"{last_host} answered HTTP {status} with a body that is not a token response; "
                "a proxy or captive portal may be in the way"
            )
        return CredentialFileError(
            f"cannot use the credential in {label}: {_describe_local(err, info)}"
        )

    error, desc, subtype = google_error(err)
    if error is None and last is not None and google_answered and last[1] >= 400:
        # google-auth dropped the body (reauth): the transport kept Google's own answer.
        error, desc, subtype = _body_error(last[2])
    text = readable(err)
    said = f" (HTTP {status})" if status else ""
    if (
        subtype in ("invalid_rapt", "rapt_required")
        or "invalid_rapt" in (error or "", desc or "")
        or "invalid_rapt" in str(err)
        or "reauthentication is needed" in str(err).lower()
    ):
        return ReauthRequiredError(
            "Google requires you to reauthenticate (invalid_rapt)",
            hint="run `gcloud auth application-default login` again",
        )
    if isinstance(err, gexc.ReauthFailError):
        return ReauthRequiredError(
            f"Google requires you to reauthenticate: {text}",
            hint="run `gcloud auth application-default login` again",
        )
    if (error == "invalid_grant" or error is None) and _clock_off(desc or str(err)):
        return AuthError(
            f"Google refused the signed assertion: {_one_line(desc or text)}",
            hint="this machine's clock is off (a resumed VM, WSL, a dead RTC battery): check `date -u` "
            "and fix it (`sudo timedatectl set-ntp true`, or `sudo hwclock -s` on WSL); "
            "the key itself is fine",
        )
    if error == "invalid_grant" and "audience" in (desc or "").lower():
        return AuthError(
            f"the workload identity provider refused the subject token's audience: {_one_line(desc or '')}",
            hint=f"a configuration error, not a revoked credential: the audience in {label} must name "
            "the provider, and the identity token must be issued for it (the provider's allowed audiences)",
        )
    if error == "invalid_grant" and "parse the id token" in (desc or "").lower():
        return AuthError(
            f"STS could not read the subject token as an OIDC ID token: {_one_line(desc or '')}",
            hint=f"a configuration error, not a revoked credential: the credential_source of {label} must "
            "yield the identity provider's JWT (check its file, URL or format.subject_token_field_name)",
        )
    if error == "invalid_grant" or (error is None and "invalid_grant" in str(err)):
        what = (
            "refresh token"
            if credential_type in ("authorized_user", "external_account_authorized_user")
            else "credential"
        )
        return InvalidGrantError(
            f"the {what} was revoked or has expired (invalid_grant)"
            + (f": {_one_line(desc)}" if desc else ""),
            hint=_INVALID_GRANT_HINTS.get(
                credential_type.split(" ")[0],
                "run `gcloud auth application-default login`, or create a new key for the service account",
            ),
        )
    if (
        (status in _RETRYABLE_STATUS)
        or error in _RETRYABLE_ERRORS
        or getattr(err, "retryable", False)
        or (status is None and google_answered and re.search(r"\b(5\d\d|429)\b", str(err)))
    ):
        return TransientError(f"Google's token service kept failing{said}: {text}")
    if not google_answered or (status is not None and status < 400 and error is None):
        if google_answered:
            return TransientError(
                f"{last_host} answered{said} without a token ({text}); "
                "a proxy or captive portal may be in the way"
            )
        cause = err.__cause__ or err.__context__
        if cause is not None and str(cause) and str(cause) not in text:
            text = f"{text}: {_describe_local(cause, None)}"
        return CredentialFileError(f"cannot use the credential in {label}: {text}")
    if credential_type == "compute_engine" and last is not None and status is not None:
        # The metadata server's own words are the only reason (GKE: the Kubernetes service account is not
        # bound to a Google one; GCE: no service account attached): keep them past google-auth's long URL.
        said_body = _body_text(last[2], _MAX_REASON)
        return AuthError(
            f"the metadata server refused a token{said}: {said_body or text}",
            hint="attach a service account to the VM, or on GKE bind the Kubernetes service account to a "
            "Google service account (Workload Identity)",
        )
    return AuthError(
        f"Google refused the credential{said}: {text}",
        hint=_table_hint(
            status, last[2] if last is not None else b"", credential_type, info, impersonate
        ),
    )


def _clock_off(text: str) -> bool:
    """Google's token endpoint refused a JWT assertion for its times: this machine's clock, not the key."""
    lowered = text.lower()
    return "invalid jwt" in lowered and any(hint in lowered for hint in _CLOCK_HINTS)


def _body_text(body: bytes, limit: int = _MAX_TEXT) -> str:
    """An answer's body as one redacted line: Google's `error_description` / `message` when it is JSON."""
    error, desc, _subtype = _body_error(body)
    if error:
        return _one_line(f"{error}: {desc}" if desc else error, limit)
    return _one_line(body.decode("utf-8", "replace"), limit)


def _credential_source_hosts(info: dict[str, Any] | None) -> frozenset[str]:
    """Hosts an external_account's own credential_source asks (AWS's metadata service, a url-sourced token):
    their answers are the environment's, never Google's."""
    source = (info or {}).get("credential_source")
    if not isinstance(source, dict):
        return frozenset()
    hosts = {
        _host(str(source[key]))
        for key in ("url", "region_url", "imdsv2_session_token_url")
        if isinstance(source.get(key), str)
    }
    if str(source.get("environment_id", "")).startswith("aws"):
        hosts |= {"169.254.169.254", "fd00:ec2::254"}
    return frozenset(h for h in hosts if h)


def _table_hint(
    status: int | None,
    body: bytes,
    credential_type: str,
    info: dict[str, Any] | None,
    impersonate: str | None,
) -> str | None:
    """The fix the table of refusals gives for Google's answer, for this credential's principal."""
    if status is None:
        return None
    from vertex_env.core.refusal_table import principal_of, read_answer, row_for, situation_for

    answer = read_answer(status, body)
    if row_for(answer).key == "OTHER":
        return None
    from vertex_env.core.refusal_table import advise

    # Who asked: the caller, not the account it impersonates (that one is the target of the fix).
    caller = dict(info or {})
    target = impersonate or _IMPERSONATION_TARGET.search(
        str(caller.pop("service_account_impersonation_url", ""))
    )
    kind = credential_type.split(" ")[0]
    if kind == "impersonated_service_account" and isinstance(
        caller.get("source_credentials"), dict
    ):
        caller = caller["source_credentials"]
        kind = str(caller.get("type") or "authorized_user")
    situation = situation_for(
        project=None, location=None, quota_project=None, principal=principal_of(kind, caller)
    )
    advice = advise(answer, situation)
    text = f"{advice.summary}: {'; '.join(advice.fixes)}" if advice.fixes else advice.summary
    if target is not None:
        text = text.replace("SA_EMAIL", target if isinstance(target, str) else target.group(1))
    return text


_IMPERSONATION_TARGET = re.compile(r"serviceAccounts/([^:/]+):generateAccessToken")

"""Synthetic Google credential files, one writer per ADC type, for the emulator's users, tests and demo.

Each writer produces the exact JSON shape gcloud or the Cloud console would, with fake secrets, written
atomically with mode 0600, and returns the path. With `emulator_url` the URLs inside the file point at the
emulator (for tools that do not go through vertex-env's transport seam); without it they are Google's real
URLs, which the seam reroutes when VERTEX_ENV_EMULATOR_HOST is set.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from vertex_env.system.files import atomic_write

DEFAULT_PROJECT_ID = "emulated-project"
DEFAULT_ACCOUNT = "user@example.com"
DEFAULT_CLIENT_ID = "emulated-client-id.apps.googleusercontent.com"
DEFAULT_SERVICE_ACCOUNT = f"emulated-sa@{DEFAULT_PROJECT_ID}.iam.gserviceaccount.com"
DEFAULT_IMPERSONATION_TARGET = f"target-sa@{DEFAULT_PROJECT_ID}.iam.gserviceaccount.com"
WORKLOAD_AUDIENCE = (
    "//iam.googleapis.com/projects/123456789012/locations/global/"
    "workloadIdentityPools/emulated-pool/providers/emulated-provider"
)
WORKFORCE_AUDIENCE = (
    "//iam.googleapis.com/locations/global/workforcePools/emulated-pool/providers/emulated-provider"
)
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"

_GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
_STS_TOKEN_URL = "https://sts.googleapis.com/v1/token"
_STS_OAUTH_TOKEN_URL = "https://sts.googleapis.com/v1/oauthtoken"
_IAM_CREDENTIALS_URL = "https://iamcredentials.googleapis.com"


class KeyRegistry(Protocol):
    """Where a public key goes so the emulator verifies assertion signatures (EmulatorState, EmulatorAdmin)."""

    def register_key(
        self, email: str, public_key_pem: str | bytes, key_id: str | None = None
    ) -> None: ...


def write_json_secret(path: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    """Write JSON with mode 0600 atomically: a temp file in the same directory, then os.replace."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return _write_secret(target, json.dumps(data, indent=2) + "\n")


def _write_secret(target: Path, text: str) -> Path:
    atomic_write(target, text.encode("utf-8"), 0o600)
    return target


def _fake_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(24)


def authorized_user_info(
    *,
    quota_project_id: str | None = None,
    account: str = DEFAULT_ACCOUNT,
    client_id: str = DEFAULT_CLIENT_ID,
) -> dict[str, Any]:
    """The gcloud ADC `authorized_user` JSON, with a fresh fake refresh token and client secret."""
    info: dict[str, Any] = {
        "type": "authorized_user",
        "account": account,
        "client_id": client_id,
        "client_secret": _fake_secret("emu-secret-"),
        "refresh_token": _fake_secret("1//emu-refresh-"),
        "universe_domain": "googleapis.com",
    }
    if quota_project_id:
        info["quota_project_id"] = quota_project_id
    return info


def write_authorized_user(
    path: str | os.PathLike[str],
    *,
    quota_project_id: str | None = None,
    account: str = DEFAULT_ACCOUNT,
    client_id: str = DEFAULT_CLIENT_ID,
) -> Path:
    """What `gcloud auth application-default login` writes (google-auth ignores token_uri for this type)."""
    return write_json_secret(
        path,
        authorized_user_info(
            quota_project_id=quota_project_id, account=account, client_id=client_id
        ),
    )


def generate_rsa_key() -> tuple[str, str]:
    """A fresh RSA 2048 key pair as (private key PKCS#8 PEM, public key PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return private_pem, public_pem


def write_service_account(
    path: str | os.PathLike[str],
    emulator_url: str | None = None,
    *,
    project_id: str = DEFAULT_PROJECT_ID,
    client_email: str | None = None,
    register_with: KeyRegistry | None = None,
) -> Path:
    """A service-account key file with a fresh RSA key; `register_with` learns its public key."""
    private_pem, public_pem = generate_rsa_key()
    email = client_email or f"emulated-sa@{project_id}.iam.gserviceaccount.com"
    key_id = secrets.token_hex(20)
    token_uri = f"{emulator_url.rstrip('/')}/token" if emulator_url else _GOOGLE_TOKEN_URI
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": key_id,
        "private_key": private_pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email}",
        "universe_domain": "googleapis.com",
    }
    written = write_json_secret(path, info)
    if register_with is not None:
        register_with.register_key(email, public_pem, key_id)
    return written


def _iam_base(emulator_url: str | None) -> str:
    return emulator_url.rstrip("/") if emulator_url else _IAM_CREDENTIALS_URL


def impersonation_url(target: str, emulator_url: str | None = None) -> str:
    """IAM `generateAccessToken` URL for `target` (at the emulator when its URL is given)."""
    return f"{_iam_base(emulator_url)}/v1/projects/-/serviceAccounts/{target}:generateAccessToken"


def write_external_account(
    path: str | os.PathLike[str],
    emulator_url: str | None = None,
    *,
    subject_token_file: str | os.PathLike[str],
    impersonate: str | None = None,
    audience: str = WORKLOAD_AUDIENCE,
    token_lifetime_seconds: int | None = None,
) -> Path:
    """A workload identity federation file, file-sourced: also writes a fake OIDC subject token there."""
    subject = Path(subject_token_file)
    subject.parent.mkdir(parents=True, exist_ok=True)
    _write_secret(subject, _fake_jwt())
    info: dict[str, Any] = {
        "type": "external_account",
        "audience": audience,
        "subject_token_type": JWT_TOKEN_TYPE,
        "token_url": f"{emulator_url.rstrip('/')}/v1/token" if emulator_url else _STS_TOKEN_URL,
        "credential_source": {"file": str(subject.resolve())},
        "universe_domain": "googleapis.com",
    }
    if impersonate:
        info["service_account_impersonation_url"] = impersonation_url(impersonate, emulator_url)
        if token_lifetime_seconds is not None:
            info["service_account_impersonation"] = {
                "token_lifetime_seconds": token_lifetime_seconds
            }
    return write_json_secret(path, info)


def _fake_jwt() -> str:
    """An unsigned-looking OIDC token: the emulator's STS only needs a non-empty subject token."""
    import base64

    def segment(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode("ascii")

    header = segment({"alg": "RS256", "typ": "JWT"})
    payload = segment(
        {"iss": "https://emulated-idp.example.com", "sub": "workload", "aud": WORKLOAD_AUDIENCE}
    )
    return f"{header}.{payload}.{secrets.token_urlsafe(32)}"


def write_external_account_authorized_user(
    path: str | os.PathLike[str],
    emulator_url: str | None = None,
    *,
    audience: str = WORKFORCE_AUDIENCE,
) -> Path:
    """What `gcloud auth application-default login` writes for a workforce identity federation user."""
    base = emulator_url.rstrip("/") if emulator_url else "https://sts.googleapis.com"
    info = {
        "type": "external_account_authorized_user",
        "audience": audience,
        "client_id": "emulated-workforce-client",
        "client_secret": _fake_secret("emu-secret-"),
        "refresh_token": _fake_secret("emu-refresh-"),
        "token_url": f"{base}/v1/oauthtoken" if emulator_url else _STS_OAUTH_TOKEN_URL,
        "token_info_url": f"{base}/v1/introspect",
        "revoke_url": f"{base}/v1/oauthtoken:revoke",
        "universe_domain": "googleapis.com",
    }
    return write_json_secret(path, info)


def write_impersonated_service_account(
    path: str | os.PathLike[str],
    emulator_url: str | None = None,
    *,
    source: Mapping[str, Any] | None = None,
    target: str = DEFAULT_IMPERSONATION_TARGET,
    delegates: list[str] | None = None,
) -> Path:
    """What `gcloud auth application-default login --impersonate-service-account=TARGET` writes.

    `source` is the source credential's info (an authorized_user dict by default, freshly made).
    """
    info = {
        "type": "impersonated_service_account",
        "service_account_impersonation_url": impersonation_url(target, emulator_url),
        "source_credentials": dict(source) if source is not None else authorized_user_info(),
        "delegates": list(delegates or []),
    }
    return write_json_secret(path, info)

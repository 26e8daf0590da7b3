"""Where the credential comes from (no google-auth import), and turning it into a fresh token (google-auth).

`locate()` follows ADC's order — explicit file or keyring entry, GOOGLE_APPLICATION_CREDENTIALS, gcloud's
well-known file, then the metadata server — and gives each source a stable identity for the token cache.
`mint()` is the only function that talks to Google, always through `vertex_env.core.transport.make_request()`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from vertex_env.config.profile import Profile
from vertex_env.core.token import Token
from vertex_env.errors import (
    CredentialFileError,
    NoCredentialsError,
    TransientError,
    VertexEnvError,
)
from vertex_env.system.digest import sha256_hex
from vertex_env.system.record import Record

TYPE_CHECKING = False  # typing stays off the warm `export` path (vertex_env.cli.entry)
if TYPE_CHECKING:
    from typing import Any

KNOWN_TYPES = (
    "authorized_user",
    "service_account",
    "external_account",
    "external_account_authorized_user",
    "impersonated_service_account",
)
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "authorized_user": ("client_id", "client_secret", "refresh_token"),
    "service_account": ("client_email", "private_key", "token_uri"),
    "external_account": ("audience", "subject_token_type", "token_url"),
    "external_account_authorized_user": (
        "refresh_token",
        "token_url",
        "client_id",
        "client_secret",
    ),
    "impersonated_service_account": ("service_account_impersonation_url", "source_credentials"),
}
#: Valid ADC types google-auth knows that vertex-env cannot use, and why.
UNSUPPORTED_TYPES = {
    "gdch_service_account": "a Google Distributed Cloud (air-gapped) service account; its tokens are for "
    "that universe's own service-identity endpoint, not Vertex AI on googleapis.com",
}
GOOGLE_UNIVERSE = "googleapis.com"
_NO_GCE_VALUES = ("true", "1", "yes")


def _debug(environ: Mapping[str, str]) -> bool:
    """--debug / VERTEX_ENV_DEBUG, as the option table reads it (environment.resolve folds the flag in)."""
    from vertex_env.config.options import value

    return bool(value("debug", {}, environ))


def redact(text: str) -> str:
    """Remove anything shaped like a token or secret from a message (vertex_env.core.refusals.redact)."""
    from vertex_env.core.refusals import redact as _redact  # not on the warm path's import list

    return _redact(text)


def well_known_file(environ: Mapping[str, str]) -> Path:
    config_dir = environ.get("CLOUDSDK_CONFIG") or str(
        Path(environ.get("HOME") or Path.home()) / ".config" / "gcloud"
    )
    return Path(config_dir) / "application_default_credentials.json"


class CredentialSource(Record):
    """A located credential: a JSON document (file or keyring) or the metadata server. Immutable; its repr
    leaves out `content` (refresh tokens, private keys). A plain class, not a dataclass: dataclasses imports
    inspect and ast, a few ms of every warm `export`."""

    __slots__ = ("content", "keyring_name", "kind", "metadata_host", "origin", "path")

    kind: str  # "file" | "keyring" | "metadata"
    origin: str  # how it was found, for `status` and error messages
    path: str | None
    keyring_name: str | None
    content: bytes | None
    metadata_host: str | None

    def __init__(
        self,
        kind: str,
        origin: str,
        path: str | None = None,
        keyring_name: str | None = None,
        content: bytes | None = None,
        metadata_host: str | None = None,
    ) -> None:
        self._set(
            kind=kind,
            origin=origin,
            path=path,
            keyring_name=keyring_name,
            content=content,
            metadata_host=metadata_host,
        )

    def __repr__(self) -> str:
        return (
            f"CredentialSource(kind={self.kind!r}, origin={self.origin!r}, path={self.path!r}, "
            f"keyring_name={self.keyring_name!r}, metadata_host={self.metadata_host!r})"
        )

    @property
    def identity(self) -> str:
        if self.kind == "metadata":
            return f"metadata:{self.metadata_host or 'default'}"
        digest = sha256_hex(self.content or b"")
        where = self.path if self.kind == "file" else f"keyring:{self.keyring_name}"
        return f"{self.kind}:{where}:{digest}"

    def info(self) -> dict[str, Any]:
        """The parsed credential JSON, checked for the fields google-auth needs."""
        label = self.label
        try:
            data = _loads(self.content)
        except (ValueError, UnicodeDecodeError):
            raise CredentialFileError(
                f"malformed credential file {label}: not valid JSON"
            ) from None
        if not isinstance(data, dict):
            raise CredentialFileError(f"malformed credential file {label}: expected a JSON object")
        cred_type = data.get("type")
        if cred_type is not None and not isinstance(cred_type, str):
            raise CredentialFileError(
                f"malformed credential file {label}: field 'type' is a {type(cred_type).__name__}, "
                "not a string"
            )
        if cred_type in UNSUPPORTED_TYPES:
            raise CredentialFileError(
                f"unsupported credential type {cred_type!r} in {label}: {UNSUPPORTED_TYPES[cred_type]}"
            )
        if cred_type is None:
            raise CredentialFileError(
                f"malformed credential file {label}: no field 'type' (not an Application Default "
                f"Credentials file; expected one of {', '.join(KNOWN_TYPES)})"
            )
        if cred_type not in KNOWN_TYPES:
            raise CredentialFileError(
                f"malformed credential file {label}: field 'type' is {cred_type!r}, expected one of {', '.join(KNOWN_TYPES)}"
            )
        for name in REQUIRED_FIELDS[cred_type]:
            if not data.get(name):
                raise CredentialFileError(
                    f"malformed credential file {label}: {cred_type} credential lacks field {name!r}"
                )
        _check_universe(data, label)
        return data

    @property
    def label(self) -> str:
        """How error messages name this credential."""
        if self.kind == "metadata":
            return "the metadata server's credential"
        return self.path or f"keyring entry {self.keyring_name!r}"

    @property
    def credential_type(self) -> str:
        if self.kind == "metadata":
            return "compute_engine"
        try:
            return str(_loads(self.content).get("type", "unknown"))
        except (ValueError, AttributeError):
            return "unknown"

    def principal(self) -> str | None:
        """The account or service account this credential acts as, when the document says."""
        if self.kind == "metadata":
            return None
        try:
            data = _loads(self.content)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        if data.get("client_email"):
            return str(data["client_email"])
        url = str(data.get("service_account_impersonation_url") or "")
        import re  # only when minting or for `status`

        match = re.search(r"serviceAccounts/([^:/]+):generateAccessToken", url)
        if match:
            return match.group(1)
        if data.get("account"):
            return str(data["account"])
        if data.get("type") == "authorized_user":
            return "(gcloud user credentials)"
        if data.get("audience"):
            return f"(workload identity {data['audience']})"
        return None


def _check_universe(data: Mapping[str, Any], label: str) -> None:
    """Refuse a credential from another universe (Trusted Partner Cloud, GDCH, …): google-auth would hand back
    a self-signed JWT or call that universe's STS, and Vertex AI at aiplatform.googleapis.com answers 401."""
    for where in (data, data.get("source_credentials")):
        if not isinstance(where, Mapping):
            continue
        universe = where.get("universe_domain")
        if universe not in (None, "", GOOGLE_UNIVERSE):
            raise CredentialFileError(
                f"the credential in {label} belongs to the universe {universe!r}; vertex-env reaches "
                f"Vertex AI only in {GOOGLE_UNIVERSE}, where a token from another universe cannot work"
            )


def _loads(content: bytes | None) -> Any:
    """json.loads, with a document nested too deeply for the parser a ValueError like any other bad JSON."""
    try:
        return json.loads(content or b"")
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _read_file(path: str, origin: str) -> CredentialSource:
    """The credential file's bytes: ours or root's, a regular file, not reached through another user's link
    in a shared folder (UnsafeFileError, exit 9: another user's ADC decides where our token goes)."""
    from vertex_env.system.files import read_user_file

    try:
        read = read_user_file(os.path.expanduser(path), what="credential file")
    except FileNotFoundError:
        raise CredentialFileError(
            f"credential file {_shown(path)} does not exist (from {origin})"
        ) from None
    except OSError as err:
        raise CredentialFileError(
            f"cannot read credential file {_shown(path)}: {err.strerror}"
        ) from None
    return CredentialSource(kind="file", origin=origin, path=str(read.path), content=read.data)


def _shown(text: str) -> str:
    from vertex_env.system.echo import printable  # only on the way to an error

    return printable(text)


def _check_credential_source_file(info: Mapping[str, Any]) -> None:
    """google-auth opens an identity pool's `credential_source.file` itself, blocking and uncapped: check it
    first as every file read on the user's behalf (ours or root's, regular, not through a foreign link)."""
    source = info.get("credential_source")
    path = source.get("file") if isinstance(source, Mapping) else None
    if not isinstance(path, str) or not path:
        return
    from vertex_env.system.echo import printable
    from vertex_env.system.files import check_user_path

    try:
        check_user_path(path, what="credential_source file")
    except FileNotFoundError:
        return  # google-auth says so in its own words
    except OSError as err:
        raise CredentialFileError(
            f"cannot read credential_source file {printable(path)}: {err.strerror or err}"
        ) from None


def _metadata_host(environ: Mapping[str, str]) -> str | None:
    return environ.get("GCE_METADATA_HOST") or environ.get("GCE_METADATA_ROOT") or None


def locate(profile: Profile, environ: Mapping[str, str] | None = None) -> CredentialSource:
    """The credential to use, in ADC order. Metadata is returned unprobed (probing costs a round trip)."""
    env = os.environ if environ is None else environ
    spec = profile.credentials
    if spec:
        origin = profile.sources.get("credentials", "configuration")
        if spec.startswith("keyring:"):
            from vertex_env.core.keyring_store import load_entry

            name = spec[len("keyring:") :]
            return CredentialSource(
                kind="keyring", origin=origin, keyring_name=name, content=load_entry(name)
            )
        return _read_file(spec, origin)
    explicit = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if explicit:
        return _read_file(explicit, "env GOOGLE_APPLICATION_CREDENTIALS")
    known = well_known_file(env)
    if known.is_file():
        return _read_file(str(known), "gcloud application-default login")
    return CredentialSource(
        kind="metadata", origin="metadata server", metadata_host=_metadata_host(env)
    )


def credential_project(
    profile: Profile, environ: Mapping[str, str] | None = None
) -> tuple[str, str] | None:
    """The project the credential knows: a file's project_id, or the metadata server's.

    Never `quota_project_id`: as in google-auth (`_default.py`), that is the project billed for quota (sent as
    x-goog-user-project, see `credential_quota_project`), not the project a request's URL names."""
    env = os.environ if environ is None else environ
    try:
        source = locate(profile, env)
    except VertexEnvError:
        return None
    if source.kind == "metadata":
        project = metadata_project(env)
        return (project, "metadata server") if project else None
    project = _file_field(source, "project_id")
    return (project, f"credential file {source.path} (project_id)") if project else None


def credential_quota_project(
    profile: Profile, environ: Mapping[str, str] | None = None
) -> tuple[str, str] | None:
    """The ADC file's `quota_project_id` (gcloud writes it at `application-default login`), as google-auth
    uses it: the quota project sent as x-goog-user-project. None for the metadata server and the keyring
    (reading a keyring entry costs a keyring round trip on every command; set quota_project in the profile)."""
    env = os.environ if environ is None else environ
    if (profile.credentials or "").startswith("keyring:"):
        return None
    try:
        source = locate(profile, env)
    except VertexEnvError:
        return None
    quota = _file_field(source, "quota_project_id")
    return (quota, f"credential file {source.path} (quota_project_id)") if quota else None


def _file_field(source: CredentialSource, name: str) -> str | None:
    """A non-empty string field of a credential file; None for other sources or a file that is not a JSON
    object (minting reports that file, not project resolution)."""
    if source.kind != "file":
        return None
    try:
        data = _loads(source.content)
    except ValueError:
        return None
    value = data.get(name) if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def metadata_project(environ: Mapping[str, str]) -> str | None:
    """project/project-id from the metadata server, probed as briefly as the credential itself."""
    if environ.get("NO_GCE_CHECK", "").lower() in _NO_GCE_VALUES:
        return None
    import google.auth.exceptions

    from vertex_env.core.transport import make_request

    timeout, retries = metadata_probe_settings(environ)
    host = _metadata_host(environ) or "metadata.google.internal"
    request = make_request(
        timeout=timeout, retries=retries - 1, environ=environ, debug=_debug(environ)
    )
    try:
        response = request(
            f"http://{host}/computeMetadata/v1/project/project-id",
            headers={"Metadata-Flavor": "Google"},
            timeout=timeout,
        )
    except google.auth.exceptions.TransportError:
        return None
    if response.status != 200:
        return None
    data = response.data
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    return text.strip() or None


def _expiry(creds: Any) -> float:
    expiry = getattr(creds, "expiry", None)
    if expiry is None:
        import time

        return time.time() + 3600.0
    if expiry.tzinfo is None:
        import datetime as dt

        expiry = expiry.replace(tzinfo=dt.timezone.utc)
    return float(expiry.timestamp())


def metadata_probe_settings(environ: Mapping[str, str]) -> tuple[float, int]:
    """(timeout, retries) for the metadata probe: short unless the user configured metadata explicitly."""
    from vertex_env.config.routing import emulator_host

    if _metadata_host(environ) or environ.get("GCE_METADATA_IP") or emulator_host(environ):
        return 3.0, 2
    return 0.3, 1


def load_google_credentials(
    profile: Profile, source: CredentialSource, request: Any, environ: Mapping[str, str]
) -> Any:
    """google-auth credentials for the source, with impersonation applied."""
    import google.auth.exceptions

    scopes = list(profile.scopes)
    if source.kind == "metadata":
        if environ.get("NO_GCE_CHECK", "").lower() in _NO_GCE_VALUES:
            raise _no_credentials(environ, "metadata server check disabled by NO_GCE_CHECK")
        from google.auth.compute_engine import _metadata
        from google.auth.compute_engine import credentials as gce

        timeout, retries = metadata_probe_settings(environ)
        if not _metadata.ping(request, timeout=timeout, retry_count=retries):
            raise _no_credentials(environ, "no metadata server answered")
        creds: Any = gce.Credentials(scopes=scopes)
    else:
        info = source.info()
        _check_credential_source_file(info)
        try:
            creds = credentials_from_info(info, scopes)
        except (google.auth.exceptions.DefaultCredentialsError, ValueError, KeyError) as err:
            from vertex_env.core.refusals import readable

            raise CredentialFileError(
                f"malformed credential file {source.label}: {readable(err)}"
            ) from None
    if profile.impersonate:
        from google.auth import impersonated_credentials

        if hasattr(creds, "with_scopes") and getattr(creds, "requires_scopes", False):
            creds = creds.with_scopes(["https://www.googleapis.com/auth/cloud-platform"])
        creds = impersonated_credentials.Credentials(
            source_credentials=creds,
            target_principal=profile.impersonate,
            target_scopes=scopes,
            lifetime=profile.lifetime,
        )
    return creds


def credentials_from_info(info: dict[str, Any], scopes: list[str]) -> Any:
    """google-auth credentials through the loader for the (already validated) type, as google-auth recommends
    over its generic `load_credentials_from_dict`."""
    cred_type = info["type"]
    if cred_type == "authorized_user":
        from google.oauth2 import credentials as user

        return user.Credentials.from_authorized_user_info(info, scopes=scopes)
    if cred_type == "service_account":
        from google.oauth2 import service_account

        return service_account.Credentials.from_service_account_info(info, scopes=scopes)
    if cred_type == "external_account_authorized_user":
        from google.auth import external_account_authorized_user

        return external_account_authorized_user.Credentials.from_info(info)
    if cred_type == "impersonated_service_account":
        from google.auth import impersonated_credentials

        return impersonated_credentials.Credentials.from_impersonated_service_account_info(
            info, scopes=scopes
        )
    source = info.get("credential_source") or {}
    if info.get("subject_token_type") == "urn:ietf:params:aws:token-type:aws4_request":
        from google.auth import aws

        return aws.Credentials.from_info(info, scopes=scopes)
    if isinstance(source, dict) and source.get("executable") is not None:
        from google.auth import pluggable

        return pluggable.Credentials.from_info(info, scopes=scopes)
    from google.auth import identity_pool

    return identity_pool.Credentials.from_info(info, scopes=scopes)


def _no_credentials(environ: Mapping[str, str], why: str) -> NoCredentialsError:
    tried = [
        "--credentials / VERTEX_ENV_CREDENTIALS (not set)",
        "GOOGLE_APPLICATION_CREDENTIALS (not set)",
        f"{well_known_file(environ)} (not found)",
        f"metadata server ({why})",
    ]
    return NoCredentialsError(
        "no Google credentials found; tried " + "; ".join(tried),
        hint="run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS; "
        "to try vertex-env without a Google account, run `vertex-env demo` (offline)",
    )


def mint(
    profile: Profile, source: CredentialSource, environ: Mapping[str, str] | None = None
) -> Token:
    """Ask Google for a new access token. Every failure becomes a VertexEnvError with its exit code."""
    env = os.environ if environ is None else environ
    import time

    import google.auth.exceptions

    from vertex_env.core.transport import make_request

    request = make_request(environ=env, total=profile.timeout, debug=_debug(env))
    creds = load_google_credentials(profile, source, request, env)
    asked_at = time.time()
    try:
        creds.refresh(request)
    except (OverflowError, RecursionError) as err:
        # expires_in of 1e20 or Infinity (a datetime cannot hold it), an answer nested too deeply to parse.
        what = "an expires_in that is not a usable number of seconds"
        if isinstance(err, RecursionError):
            what = "an answer nested too deeply to read"
        raise TransientError(f"the token endpoint answered {what}") from None
    # OAuthError (every STS exchange) is not a RefreshError; ValueError/TypeError come from a key google-auth
    # cannot sign with or a body that is not a token response: google_errors tells which from the transport.
    except (google.auth.exceptions.GoogleAuthError, ValueError, TypeError, KeyError) as err:
        from vertex_env.core.refusals import classify

        raise classify(
            err,
            label=source.label,
            credential_type=source.credential_type,
            request=request,
            info=_parsed(source),
            impersonate=profile.impersonate,
        ) from None
    principal = source.principal()
    if profile.impersonate:
        principal = profile.impersonate
    elif source.kind == "metadata":
        principal = getattr(creds, "service_account_email", None) or "default"
    expires_at = _expiry(creds)
    value = _checked_token(creds.token, expires_at, time.time())
    return Token(
        value=value,
        expires_at=expires_at,
        minted_at=_issued_at(profile, source, asked_at, expires_at),
        principal=principal,
        credential_type=source.credential_type + (" → impersonated" if profile.impersonate else ""),
    )


#: The longest access token accepted: Google's are a few hundred to a few thousand characters, and a cache
#: record (vertex_env.system.files.READ_LIMIT, 64 KiB) must hold one, or every call would mint again.
MAX_TOKEN_CHARS = 16 * 1024


def _checked_token(token: object, expires_at: float, now: float) -> str:
    """The access token, if it is one: a non-empty printable string (`cache.valid_token`) within
    MAX_TOKEN_CHARS, alive (a finite expiry after `now`). Else TransientError (exit 8): a misbehaving endpoint,
    never a token exported (12345, ["a"], expires_in -3600 were)."""
    import math

    from vertex_env.core.cache import NOT_A_TOKEN, valid_token

    if not valid_token(token) or not isinstance(token, str):
        raise TransientError(NOT_A_TOKEN)
    if len(token) > MAX_TOKEN_CHARS:
        raise TransientError(
            f"the token endpoint answered an access token of {len(token)} characters "
            f"(at most {MAX_TOKEN_CHARS} are kept)"
        )
    if not math.isfinite(expires_at) or expires_at <= now:
        raise TransientError(
            "the token endpoint answered a token that has already expired "
            "(expires_in is not a positive number)"
        )
    return token


def _issued_at(
    profile: Profile, source: CredentialSource, asked_at: float, expires_at: float
) -> float:
    """When the token was issued, as far as its answer tells. IAM issues exactly the lifetime asked for (its
    answer is an expireTime, on Google's clock): expiry minus lifetime. A token endpoint issues a new token
    per request: when we asked. A metadata server answers with its cached token and only what it has left
    (`expires_in`): when we asked is all that is known; TokenSource keeps the earlier time of a token it
    already had."""
    if profile.impersonate:
        return min(asked_at, expires_at - profile.lifetime)
    return asked_at


def _parsed(source: CredentialSource) -> dict[str, Any] | None:
    try:
        data = _loads(source.content)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None

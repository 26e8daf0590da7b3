"""What `vertex-env status` reports: every resolved value and where it came from, the credential, the token's
life (masked), the keyring, the emulator routing and the profile's daemon — as values; commands/status.py prints."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from vertex_env.config.options import OPTIONS
from vertex_env.config.routing import emulator_host
from vertex_env.config.values import format_duration
from vertex_env.environment import Environment
from vertex_env.errors import AuthError, NoCredentialsError, VertexEnvError
from vertex_env.sinks.daemon import (
    clock_text,
    daemon_digest,
    lock_held,
    lock_path,
    read_state,
    state_path,
)
from vertex_env.system import files

__all__ = [
    "collect",
    "countdown",
    "daemon_status",
    "keyring_label",
    "mask",
    "profile_overview",
]


def mask(token: str) -> str:
    """Enough of a token to tell two apart, never enough to use: `ya29.…(243 chars)…f3`."""
    if len(token) < 12:
        return "…"
    return f"{token[:5]}…({len(token)} chars)…{token[-2:]}"


def countdown(seconds: float) -> str:
    if seconds <= 0:
        return f"expired {format_duration(-seconds)} ago"
    return f"expires in {format_duration(seconds)}"


#: keyring backends by the module.class keyring names them, as a person knows them.
_KEYRING_NAMES = {
    "keyring.backends.fail.Keyring": "none usable (no OS keyring backend found)",
    "keyring.backends.null.Keyring": "none (keyring's null backend stores nothing)",
    "keyring.backends.SecretService.Keyring": "Secret Service (e.g. GNOME Keyring)",
    "keyring.backends.libsecret.Keyring": "Secret Service via libsecret",
    "keyring.backends.kwallet.DBusKeyring": "KWallet",
    "keyring.backends.macOS.Keyring": "macOS Keychain",
    "keyring.backends.Windows.WinVaultKeyring": "Windows Credential Locker",
    "keyring.backends.chainer.ChainerBackend": "the first usable of several backends (keyring's chainer)",
}


def keyring_label(backend: str) -> str:
    """A keyring backend's module.class as a person knows it (an unknown one as keyring names it)."""
    return _KEYRING_NAMES.get(backend, backend)


def _keyring_backend() -> str:
    try:
        from vertex_env.core.keyring_store import backend_name

        return backend_name()
    except Exception as err:  # status must render even when keyring is broken
        return f"unavailable ({err})"


def daemon_status(env: Environment) -> dict[str, Any]:
    """Whether a daemon serves this profile, its last and next refresh; `summary` for people."""
    directory, digest = env.token_source.cache.directory, daemon_digest(env)
    try:
        files.check_private_dir(directory)
    except files.UnsafeDirectoryError as err:
        return {
            "running": False,
            "pid": None,
            "last_refresh": None,
            "next_refresh": None,
            "last_error": None,
            "state_file": str(state_path(directory, digest)),
            "summary": f"unknown: the cache directory {directory} is not private ({err.strerror})",
        }
    except OSError:
        pass  # no directory yet: no daemon
    running = lock_held(lock_path(directory, digest))
    state = read_state(state_path(directory, digest)) or {}
    result: dict[str, Any] = {
        "running": running,
        "pid": state.get("pid"),
        "last_refresh": state.get("last_refresh"),
        "next_refresh": state.get("next_refresh"),
        "last_error": state.get("last_error"),
        "state_file": str(state_path(directory, digest)),
    }
    if running:
        parts = [f"running (pid {state.get('pid', '?')})"]
        if isinstance(state.get("last_refresh"), int | float):
            parts.append(f"last refresh {clock_text(state['last_refresh'])}")
        if isinstance(state.get("next_refresh"), int | float):
            parts.append(f"next {clock_text(state['next_refresh'])}")
        if state.get("last_error"):
            parts.append(f"failing ({state.get('failures', '?')} in a row): {state['last_error']}")
        result["summary"] = "; ".join(parts)
    elif state.get("last_error"):
        result["summary"] = (
            f"not running (pid {state.get('pid', '?')} stopped: {state['last_error']})"
        )
    else:
        result["summary"] = "not running (start one with `vertex-env daemon`)"
    return result


def collect(env: Environment) -> tuple[dict[str, Any], VertexEnvError | None]:
    """The report for `env`, and the error that getting a token met (the command's exit code), if any."""
    profile = env.profile
    report: dict[str, Any] = {"profile": profile.name, "values": {}, "warnings": []}
    for opt in OPTIONS:
        value = getattr(profile, opt.name)
        if isinstance(value, tuple):
            value = ",".join(value)
        report["values"][opt.name] = {
            "value": value,
            "source": profile.sources.get(opt.name, "default"),
        }
    error: VertexEnvError | None = None
    try:
        report["emulator"] = emulator_host(env.environ)
    except VertexEnvError as err:
        report["emulator"] = None
        report["warnings"].append(str(err))
    try:
        report["base_url"] = env.base_url
    except VertexEnvError as err:
        report["base_url"] = None
        report["warnings"].append(str(err))
    try:
        source = env.token_source.source
        report["credential"] = {
            "type": source.credential_type,
            "origin": source.origin,
            "path": source.path,
            "principal": source.principal(),
        }
        report["cache"] = {
            "path": str(env.token_source.cache.path_for(env.token_source.cache_key)),
            "enabled": env.token_source.use_cache,
        }
        token = env.token()
        report["token"] = {
            "masked": mask(token.value),
            "expires_at": int(token.expires_at),
            "remaining_seconds": int(token.remaining()),
            "countdown": countdown(token.remaining()),
            "from_cache": token.from_cache,
        }
        if token.principal:
            report["credential"]["principal"] = token.principal
    except VertexEnvError as err:
        error = err
        report["token"] = {"error": str(err)}
        if isinstance(err, NoCredentialsError):
            # `locate` names the metadata server as the last resort without asking it; nothing answered.
            report["credential"] = None
    _point_to_check(env, report, error)
    cred_type = (report.get("credential") or {}).get("type", "")
    if cred_type.startswith("authorized_user") and not profile.quota_project:
        report["warnings"].append(
            "user credentials without a quota project: requests carry no x-goog-user-project "
            "(set --quota-project or GOOGLE_CLOUD_QUOTA_PROJECT; `run --proxy`, `serve` and the Python client then send it)"
        )
    backend = _keyring_backend()
    report["keyring"] = keyring_label(backend)
    report["keyring_backend"] = backend
    try:
        report["daemon"] = daemon_status(env)
    except VertexEnvError:
        report["daemon"] = None
    return report, error


def _point_to_check(env: Environment, report: dict[str, Any], error: VertexEnvError | None) -> None:
    """When the last error came from Google (a refused mint, or a refusal the proxy or `check` recorded),
    say that `vertex-env check` tells why and what fixes it."""
    refusal = None
    if env.token_source.use_cache:
        try:
            refusal = env.token_source.last_refusal()
        except VertexEnvError:
            refusal = None
    report["last_refusal"] = (
        None
        if refusal is None
        else {"at": int(refusal[0]), "status": refusal[1], "reason": refusal[2]}
    )
    if isinstance(error, AuthError):
        report["warnings"].append(
            "Google refused the credential: `vertex-env check` shows why and the command that fixes it"
        )
    elif refusal is not None:
        at, status, reason = refusal
        report["warnings"].append(
            f"Vertex refused a request made with this profile's token {format_duration(time.time() - at)} "
            f"ago (HTTP {status}, {reason}): `vertex-env check` shows why and the command that fixes it"
        )


def profile_overview(
    names: list[str], environ: Mapping[str, str], now: float | None = None
) -> list[dict[str, Any]]:
    """Each profile as `--profile NAME` would resolve it now: project, location, credential kind and the life
    left in its cached token — read from the cache, never minted. A profile that fails to resolve has `error`."""
    from vertex_env.environment import resolve

    now = time.time() if now is None else now
    rows: list[dict[str, Any]] = []
    for name in names:
        row: dict[str, Any] = {"name": name, "project": None, "location": None, "credential": None}
        row["models"] = 0
        row.update({"expires_at": None, "remaining_seconds": None, "error": None})
        try:
            env = resolve(name, environ=environ)
            row["project"], row["location"] = env.profile.project, env.profile.location
            row["models"] = len(env.profile.models)
            source = env.token_source
            row["credential"] = source.source.credential_type
            cached = source.cache.read(source.cache_key) if source.cache.safe() else None
        except VertexEnvError as err:
            row["error"] = str(err)
            rows.append(row)
            continue
        if cached is not None:
            row["expires_at"] = int(cached.expires_at)
            row["remaining_seconds"] = int(cached.expires_at - now)
        rows.append(row)
    return rows

"""Long-lived credentials (ADC files, service-account keys) in the OS keyring; imported lazily (it costs ~100 ms)."""

from __future__ import annotations

from typing import Any

from vertex_env.errors import CredentialFileError, KeyringUnavailableError

SERVICE = "vertex-env"
_INSECURE_MARKERS = ("plaintext", "keyrings.alt", "fail.keyring", "null.keyring", "chainer")
HOW_TO_GET_ONE = (
    "on Linux run a Secret Service (gnome-keyring or KeePassXC) in a D-Bus session, e.g. "
    "`dbus-run-session -- sh -c 'echo pw | gnome-keyring-daemon --unlock; vertex-env ...'`; "
    "on macOS the Keychain is used; or keep using a credential file"
)


def _failures() -> tuple[type[BaseException], ...]:
    """What a keyring call raises when the keyring says no: keyring's own errors (KeyringLocked, InitError,
    PasswordSetError, PasswordDeleteError, …), and OSError for a D-Bus or Keychain connection that is gone.
    Anything else is a bug, and is not dressed up as "keyring unavailable"."""
    import keyring.errors

    return (keyring.errors.KeyringError, OSError)


def _backend() -> Any:
    import keyring

    return keyring.get_keyring()


def backend_name() -> str:
    backend = _backend()
    return f"{type(backend).__module__}.{type(backend).__name__}"


def require_backend() -> Any:
    """The keyring backend, refusing one that would store secrets in plaintext or store nothing."""
    backend = _backend()
    name = f"{type(backend).__module__}.{type(backend).__name__}".lower()
    priority = getattr(backend, "priority", 0)
    if (
        any(marker in name for marker in _INSECURE_MARKERS if marker != "chainer")
        or ("chainer" in name and not getattr(backend, "backends", None))
        or (isinstance(priority, (int, float)) and priority <= 0)
    ):
        raise KeyringUnavailableError(
            f"no secure OS keyring backend is available (found {backend_name()})",
            hint=HOW_TO_GET_ONE,
        )
    return backend


def load_entry(name: str) -> bytes:
    backend = require_backend()
    failures = _failures()
    try:
        value = backend.get_password(SERVICE, name)
    except failures as err:
        raise KeyringUnavailableError(
            f"cannot read keyring entry {name!r}: {type(err).__name__}", hint=HOW_TO_GET_ONE
        ) from None
    if value is None:
        raise CredentialFileError(
            f"no keyring entry {name!r}",
            hint=f"run `vertex-env credentials import FILE --name {name}`",
        )
    return str(value).encode("utf-8")


def store_entry(name: str, content: bytes) -> None:
    backend = require_backend()
    failures = _failures()
    try:
        backend.set_password(SERVICE, name, content.decode("utf-8"))
    except failures as err:
        raise KeyringUnavailableError(
            f"cannot write keyring entry {name!r}: {type(err).__name__}", hint=HOW_TO_GET_ONE
        ) from None


def store_verified(name: str, content: bytes, label: str) -> None:
    """Store `content` as keyring:NAME and read it back: a backend that drops or mangles it raises, so the caller
    keeps the source file (`credentials import --remove-source` deletes it only after this returns)."""
    store_entry(name, content)
    if load_entry(name) != content:
        raise CredentialFileError(
            f"keyring entry {name!r} did not read back as written; {label} was kept"
        )


def delete_entry(name: str) -> bool:
    backend = require_backend()
    failures = _failures()
    try:
        backend.delete_password(SERVICE, name)
    except failures:  # PasswordDeleteError: no such entry; or the keyring is locked or gone
        return False
    return True

"""The one exception family: a user-facing message plus the exit code the CLI returns for it.

Exit codes are part of the interface (documented in docs/exit-codes.md). A message never holds a token.
"""

from __future__ import annotations


class VertexEnvError(Exception):
    """An expected failure: one line for the user, and an exit code."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ConfigError(VertexEnvError):
    """A bad value in flags, environment or config file; an unknown profile."""

    exit_code = 3


class UsageError(ConfigError):
    """A bad value given to this command (a flag, an argument, a VERTEX_ENV_* or Google variable)."""

    exit_code = 2


class NoCredentialsError(VertexEnvError):
    """No Application Default Credentials anywhere."""

    exit_code = 4


class CredentialFileError(VertexEnvError):
    """A credential that cannot be read, lacks a field, or that google-auth cannot use here (a local problem:
    an unsupported type, another universe, a non-RSA key, an executable source not allowed, no AWS environment)."""

    exit_code = 5


class ReauthRequiredError(VertexEnvError):
    """Google asks the user to reauthenticate (`invalid_rapt`)."""

    exit_code = 6


class InvalidGrantError(VertexEnvError):
    """The refresh token or key was revoked or expired (`invalid_grant`)."""

    exit_code = 7


class TransientError(VertexEnvError):
    """Network failure, timeout, 5xx or 429 that persisted after retries."""

    exit_code = 8


class SinkError(VertexEnvError):
    """A destination (file, CI env file, format) refused the variables."""

    exit_code = 9


class UnsafeFileError(SinkError):
    """A file we read or write on the user's behalf that another user controls (theirs, or reached through their
    symlink in a shared folder), or that is no regular file, or too big: refused untouched."""


class LockTimeoutError(SinkError):
    """A file vertex-env must update stayed locked by another process past the deadline."""


class KeyringUnavailableError(VertexEnvError):
    """No usable OS keyring backend."""

    exit_code = 10


class AlreadyRunningError(VertexEnvError):
    """Another daemon holds the lock for this profile."""

    exit_code = 11


class AuthError(VertexEnvError):
    """Google refused the credential for another reason (permission denied, bad audience, ...)."""

    exit_code = 12


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "unexpected error",
    2: "usage error (bad flag or argument)",
    ConfigError.exit_code: "invalid configuration or unknown profile",
    NoCredentialsError.exit_code: "no credentials found",
    CredentialFileError.exit_code: "credential file malformed, unreadable or unusable here",
    ReauthRequiredError.exit_code: "reauthentication required (invalid_rapt)",
    InvalidGrantError.exit_code: "refresh token revoked or expired (invalid_grant)",
    TransientError.exit_code: "network or server failure after retries",
    SinkError.exit_code: "destination refused the variables (file, CI env file), or a file another user controls",
    KeyringUnavailableError.exit_code: "no usable OS keyring",
    AlreadyRunningError.exit_code: "a daemon is already running for this profile",
    AuthError.exit_code: "Google refused the credential",
    13: "run: already inside `vertex-env run` (use --force)",
    14: "not a POSIX system (on Windows use WSL)",
    126: "run: command not executable",
    127: "run: command not found",
}


class NestedRunError(VertexEnvError):
    """`vertex-env run` inside another `vertex-env run` (VERTEX_ENV_ACTIVE is set) without --force."""

    exit_code = 13


class NotPosixError(VertexEnvError):
    """Not a POSIX system (Windows): vertex-env's file locks, modes and signals need one."""

    exit_code = 14
    MESSAGE = "vertex-env needs a POSIX system (Linux, macOS); on Windows use WSL"

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


class CommandNotExecutableError(VertexEnvError):
    """`run`: the command exists but cannot be executed (permission, not a program)."""

    exit_code = 126


class CommandNotFoundError(VertexEnvError):
    """`run`: no such command on PATH."""

    exit_code = 127

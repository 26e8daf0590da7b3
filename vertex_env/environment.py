"""Profile + Token → the variables every sink delivers (OPENAI_API_KEY, OPENAI_BASE_URL, VERTEX_ENV_EXPIRES_AT, …)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from vertex_env.config import options as option_table
from vertex_env.config import profile as config
from vertex_env.config.profile import Profile
from vertex_env.config.routing import emulator_host
from vertex_env.core.source import Token, TokenSource
from vertex_env.system.record import Record

TYPE_CHECKING = False  # typing stays off the warm `export` path (vertex_env.cli.entry)
if TYPE_CHECKING:
    from typing import Any

API_KEY = "OPENAI_API_KEY"
BASE_URL = "OPENAI_BASE_URL"
EXPIRES_AT = "VERTEX_ENV_EXPIRES_AT"
LEGACY_BASE = "OPENAI_API_BASE"
#: The names a shell export set, recorded in the shell itself so that `--unset` removes only those.
SET_RECORD = "VERTEX_ENV_SET"
#: Every name any sink may set (what `--unset` may remove).
ALL_NAMES = (
    API_KEY,
    BASE_URL,
    EXPIRES_AT,
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    LEGACY_BASE,
)


class Environment(Record):
    """A resolved profile with its base URL and the token source every consumer shares.

    Immutable; a slotted class rather than a frozen dataclass (whose import costs the warm path more than it
    runs)."""

    __slots__ = ("environ", "profile", "token_source")

    profile: Profile
    token_source: TokenSource
    environ: Mapping[str, str]

    def __init__(
        self, profile: Profile, token_source: TokenSource, environ: Mapping[str, str]
    ) -> None:
        self._set(profile=profile, token_source=token_source, environ=environ)

    __hash__ = None  # type: ignore[assignment]  # as the frozen dataclass: environ is a dict

    def __reduce__(self) -> tuple[Any, ...]:  # copy (and pickle, where the token source allows)
        return (Environment, (self.profile, self.token_source, self.environ))

    def replace(self, *, token_source: TokenSource) -> Environment:
        """The same environment served by another token source."""
        return Environment(self.profile, token_source, self.environ)

    def __repr__(self) -> str:  # never all of os.environ (it holds the user's secrets)
        return f"Environment(profile={self.profile.name!r}, project={self.profile.project!r}, location={self.profile.location!r})"

    @property
    def base_url(self) -> str:
        return config.base_url(self.profile, emulator_host(self.environ))

    @property
    def project(self) -> str:
        return self.profile.require_project()

    @property
    def location(self) -> str:
        return self.profile.location

    def token(self, min_ttl: float | None = None, *, prefer: float | None = None) -> Token:
        """The token source's token (see TokenSource.get)."""
        if prefer is None:
            return self.token_source.get(min_ttl)
        return self.token_source.get(min_ttl, prefer=prefer)

    def variables(
        self, token: Token | None = None, *, google: bool = False, legacy: bool = False
    ) -> dict[str, str]:
        return variables(
            self.profile, token or self.token(), self.base_url, google=google, legacy=legacy
        )


def variables(
    profile: Profile, token: Token, base_url: str, *, google: bool = False, legacy: bool = False
) -> dict[str, str]:
    result = {API_KEY: token.value, BASE_URL: base_url, EXPIRES_AT: str(int(token.expires_at))}
    if google:
        result["GOOGLE_CLOUD_PROJECT"] = profile.require_project()
        result["GOOGLE_CLOUD_LOCATION"] = profile.location
    if legacy:
        result[LEGACY_BASE] = base_url
    return result


def recorded(variables: Mapping[str, str]) -> dict[str, str]:
    """The variables plus SET_RECORD naming them, for a shell that may later ask `export --unset`."""
    return {**variables, SET_RECORD: ",".join(variables)}


def names_to_unset(environ: Mapping[str, str]) -> tuple[str, ...]:
    """What `export --unset` removes: the names the shell's last export recorded (never a name vertex-env does
    not set); with no record (an export by an older version), every name vertex-env may set."""
    record = environ.get(SET_RECORD)
    if record is None:
        return (*ALL_NAMES, SET_RECORD)
    listed = {name.strip() for name in record.split(",")}
    return (*(name for name in ALL_NAMES if name in listed), SET_RECORD)


#: The keyword options `resolve()` takes: the table's options that describe the profile and its cache.
RESOLVE_OPTIONS = frozenset(
    opt.name
    for opt in option_table.ALL_OPTIONS
    if opt.kind in (option_table.FIELD, option_table.COMMON) and opt.name != "profile"
)


def resolve(
    profile: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    use_cache: bool | None = None,
    **options: Any,
) -> Environment:
    """Resolve the Environment: the one path from options to a profile and its token source.

    Keyword arguments are the options of the table `vertex_env.config.profile.ALL_OPTIONS` that describe the profile and
    its cache (project=, location=, …, no_cache=, debug=), as the command line gives them (None: not given); each one
    not given is read from its VERTEX_ENV_* variable, then the config file, Google's variables and defaults.
    `use_cache=False` is `no_cache=True`.
    """
    env = dict(os.environ if environ is None else environ)
    unknown = set(options) - RESOLVE_OPTIONS
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    given = {**options, "profile": profile}
    if use_cache is not None:
        given["no_cache"] = not use_cache

    def from_credential(p: Profile) -> tuple[str, str] | None:
        from vertex_env.core.credentials import credential_project

        return credential_project(p, env)

    def quota_from_credential(p: Profile) -> tuple[str, str] | None:
        from vertex_env.core.credentials import credential_quota_project

        return credential_quota_project(p, env)

    no_cache = option_table.value("no_cache", given, env)
    if option_table.value("debug", given, env):
        # The switch travels with the environment the credential code sees (this private copy), so the
        # transport it builds logs whether --debug or VERTEX_ENV_DEBUG asked for it.
        env[option_table.ALL_BY_NAME["debug"].env] = "1"
    prof = config.profile_from(
        given,
        env,
        credential_project=from_credential,
        credential_quota_project=quota_from_credential,
    )
    return Environment(
        profile=prof,
        token_source=TokenSource(prof, environ=env, use_cache=not no_cache),
        environ=env,
    )

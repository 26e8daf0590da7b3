"""Configuration → Profile: flags > VERTEX_ENV_* > a named profile > Google's variables > the default profile > credential > gcloud.

A Profile is data: immutable, validated once, with the source of each value kept for `status`. The pieces it is
made of live below this module: the option table (vertex_env.config.options), single-value checks
(vertex_env.config.values), the config file (vertex_env.config.file) and the emulator switch (vertex_env.config.routing);
callers import each name from the module that defines it.
Nothing here imports google-auth; this module is on the warm `export` path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from vertex_env.config.file import (
    config_file,
    did_you_mean,
    gcloud_project,
    read_config,
    select_profile,
)
from vertex_env.config.models import (
    DEFAULT_MODELS_TTL,
    ModelPlace,
    model_table,
    models_only,
    models_ttl,
)
from vertex_env.config.options import (
    OPTIONS,
    OPTIONS_BY_NAME,
    PROFILE_KEYS,
    Option,
    checked,
    given_value,
    value,
)
from vertex_env.config.values import (
    DEFAULT_TIMEOUT,
    shown,
    validate_location,
    validate_project,
)
from vertex_env.errors import ConfigError, UsageError
from vertex_env.system.record import Record

TYPE_CHECKING = False  # typing stays off the warm `export` path (vertex_env.cli.entry)
if TYPE_CHECKING:
    from typing import Any


#: The fields of a Profile (besides `sources`), in order.
PROFILE_FIELDS = (*OPTIONS_BY_NAME, "name", "write", "models", "models_only", "models_ttl")


class Profile(Record):
    """The resolved configuration. `sources[name]` says where each value came from.

    Immutable and compared by value (not by `sources`); a plain slotted class rather than a frozen dataclass,
    whose import (dataclasses → inspect → ast, dis, tokenize) would cost the warm path more than it runs."""

    __slots__ = (*PROFILE_FIELDS, "sources")
    _compared = PROFILE_FIELDS  # not `sources`: where a value came from is not what it is
    _immutable_hint = "use replace()"

    name: str | None
    project: str | None
    location: str
    endpoint: str
    api_version: str
    host: str | None
    credentials: str | None
    impersonate: str | None
    lifetime: int
    quota_project: str | None
    scopes: tuple[str, ...]
    min_ttl: int
    write: tuple[str, ...]
    timeout: int
    #: Where each configured model is served (vertex_env.config.models): what `serve` routes by `model`.
    models: tuple[ModelPlace, ...]
    #: Whether `serve`'s /models lists the configured models only (not Google's catalog and endpoints).
    models_only: bool
    #: How long `serve` keeps its model list (seconds).
    models_ttl: int
    sources: Mapping[str, str]

    def __init__(
        self,
        name: str | None,
        project: str | None,
        location: str,
        endpoint: str,
        api_version: str,
        host: str | None,
        credentials: str | None,
        impersonate: str | None,
        lifetime: int,
        quota_project: str | None,
        scopes: tuple[str, ...],
        min_ttl: int,
        write: tuple[str, ...] = (),
        timeout: int = DEFAULT_TIMEOUT,
        models: tuple[ModelPlace, ...] = (),
        models_only: bool = False,
        models_ttl: int = DEFAULT_MODELS_TTL,
        sources: Mapping[str, str] | None = None,
    ) -> None:
        values = locals()
        self._set(**{key: values[key] for key in PROFILE_FIELDS})
        self._set(sources={} if sources is None else sources)

    def __repr__(self) -> str:
        shown = ", ".join(f"{key}={getattr(self, key)!r}" for key in (*PROFILE_FIELDS, "sources"))
        return f"Profile({shown})"

    def replace(self, **changes: Any) -> Profile:
        """A copy with `changes` applied (as dataclasses.replace)."""
        return Profile(**{**self._as_dict(), **changes})

    def _as_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in (*PROFILE_FIELDS, "sources")}

    def __reduce__(self) -> tuple[Any, ...]:  # copy and pickle, as for the frozen dataclass it was
        return (_restore_profile, (self._as_dict(),))

    def require_project(self) -> str:
        if not self.project:
            raise ConfigError(
                "no project configured",
                hint="pass --project, set VERTEX_ENV_PROJECT or GOOGLE_CLOUD_PROJECT, or run `vertex-env profile set default project=ID`",
            )
        return self.project


_LIST_KEYS = ("scopes", "write")
_DURATION_KEYS = ("lifetime", "min_ttl", "timeout")


def _restore_profile(values: dict[str, Any]) -> Profile:
    return Profile(**values)


def _check_type(key: str, raw: Any, source: str) -> None:
    """A value from the TOML file must be text (a list of text for scopes/write, a number for durations)."""
    if isinstance(raw, str):
        return
    if key in _DURATION_KEYS and isinstance(raw, int) and not isinstance(raw, bool):
        return
    if (
        key in _LIST_KEYS
        and isinstance(raw, (list, tuple))
        and all(isinstance(i, str) for i in raw)
    ):
        return
    expected = "a string or a list of strings" if key in _LIST_KEYS else "a string"
    if key in _DURATION_KEYS:
        expected = "a number of seconds or a string such as '5m'"
    raise ConfigError(f"invalid {key} {shown(raw)}: expected {expected} (from {source})")


def _pick(
    opt: Option,
    given: Mapping[str, Any],
    env: Mapping[str, str],
    table: Mapping[str, Any],
    table_source: str,
    named: bool,
) -> tuple[Any, str]:
    """(raw value, where it came from) for one field: flag > VERTEX_ENV_* > Google's variables > profile, except
    that a profile the user named (--profile, VERTEX_ENV_PROFILE) outranks Google's ambient variables."""
    raw, source = given_value(opt, given, env)
    if raw is not None:
        return raw, source
    google = next((var for var in opt.google_env if env.get(var)), None)
    if named and opt.name in table:
        outranked = f"; the named profile outranks env {google}" if google else ""
        return table[opt.name], f"{table_source}{outranked}"
    if google:
        return env[google], f"env {google}"
    if opt.name in table:
        return table[opt.name], table_source
    return None, "default"


def profile_from(
    given: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    *,
    credential_project: Callable[[Profile], tuple[str, str] | None] | None = None,
    credential_quota_project: Callable[[Profile], tuple[str, str] | None] | None = None,
) -> Profile:
    """Merge every source into a validated Profile (the profile step of `vertex_env.environment.resolve`).

    `given` holds the command line's values by option name (None = not given; `profile` names the profile).
    `credential_project` is asked for the project only when no earlier source set one (it may read the
    credential file or the metadata server); `credential_quota_project` likewise for the quota project (the ADC
    file's quota_project_id).
    """
    env = os.environ if environ is None else environ
    path = config_file(env)
    requested = value("profile", given, env)
    data = read_config(path)
    name, table = select_profile(data, requested, path)
    unknown = sorted(set(table) - set(PROFILE_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key {shown(unknown[0])} in profile {name!r} of {path}"
            f"{did_you_mean(unknown[0], PROFILE_KEYS)}: expected one of {', '.join(PROFILE_KEYS)}"
        )

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for opt in OPTIONS:
        raw, source = _pick(opt, given, env, table, f"profile {name} ({path})", bool(requested))
        if raw is None:
            values[opt.name] = opt.default
        else:
            _check_type(opt.name, raw, source)
            values[opt.name] = checked(opt, raw, source)
        sources[opt.name] = source if raw is not None else "default"
    if values["impersonate"] is None and sources["lifetime"] != "default":
        cls = UsageError if sources["lifetime"].startswith(("flag", "env")) else ConfigError
        raise cls(
            f"a lifetime applies only to an impersonated token: set impersonate too, or drop the lifetime "
            f"(from {sources['lifetime']})"
        )

    if sources["location"] != "default":
        try:  # any location of the right shape with a custom host; else one Vertex serves models in
            validate_location(values["location"], hosted=values["host"] is not None)
        except ConfigError as err:
            cls = UsageError if sources["location"].startswith(("flag", "env")) else ConfigError
            raise cls(f"{err.message} (from {sources['location']})") from None

    writes = table.get("write", ())
    if isinstance(writes, str):
        writes = (writes,)
    _check_type("write", writes, f"profile {name} ({path})")
    where = f"profile {name} ({path})"
    result = Profile(
        name=name,
        write=tuple(str(w) for w in writes),
        # an entry in the profile's own location is served by the profile's host; elsewhere by Google's
        models=model_table(
            table.get("models"), where, values["location"] if values["host"] else None
        ),
        models_only=models_only(table.get("models_only"), where),
        models_ttl=models_ttl(table.get("models_ttl"), where),
        sources=sources,
        **values,
    )
    if result.project is None:
        for finder in (credential_project, lambda _p: gcloud_project(env)):
            found = finder(result) if finder else None
            if found:
                project, source = found
                try:
                    validate_project(project)
                except ConfigError:
                    continue
                sources["project"] = source
                result = result.replace(project=project, sources=sources)
                break
    found = (
        credential_quota_project(result)
        if result.quota_project is None and credential_quota_project
        else None
    )
    if found:
        quota, source = found
        try:
            validate_project(quota)
        except ConfigError:
            pass  # google-auth would send it anyway; a malformed id cannot name a billable project
        else:
            sources["quota_project"] = source
            result = result.replace(quota_project=quota, sources=sources)
    return result


def host_for(profile: Profile) -> str:
    if profile.host:
        return profile.host
    if profile.location == "global":
        return "aiplatform.googleapis.com"
    return f"{profile.location}-aiplatform.googleapis.com"


def base_url(profile: Profile, emulator_host: str | None = None) -> str:
    """`https://{host}/{version}/projects/{project}/locations/{location}/endpoints/{endpoint}`."""
    root = f"http://{emulator_host}" if emulator_host else f"https://{host_for(profile)}"
    return (
        f"{root}/{profile.api_version}/projects/{profile.require_project()}"
        f"/locations/{profile.location}/endpoints/{profile.endpoint}"
    )


def place_base_url(
    profile: Profile, location: str, endpoint: str, emulator_host: str | None = None
) -> str:
    """The base URL of `endpoint` in `location` for the profile's project and API version: the profile's own
    host (`host`) when the location is the profile's, else Google's host for that location."""
    if location == profile.location:
        return base_url(profile.replace(endpoint=endpoint), emulator_host)
    return base_url(profile.replace(location=location, endpoint=endpoint, host=None), emulator_host)

"""Configuration → Profile: flags > VERTEX_ENV_* > a named profile > Google's variables > the default profile > credential > gcloud.

A Profile is data: a frozen dataclass, validated once, with the source of each value kept for `status`.
Nothing here imports google-auth; this module is on the warm `export` path.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vertex_env.errors import ConfigError, UsageError

TYPE_CHECKING = False  # typing stays off the warm `export` path (vertex_env.fast)
if TYPE_CHECKING:
    from typing import Any

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_LOCATION = "us-central1"
DEFAULT_ENDPOINT = "openapi"
DEFAULT_API_VERSION = "v1"
DEFAULT_MIN_TTL = 300
DEFAULT_LIFETIME = 3600
MAX_LIFETIME = 43200
#: Seconds one command may spend reaching Google, across every retry (the prompt hooks pass a shorter one).
DEFAULT_TIMEOUT = 20
MAX_TIMEOUT = 600
API_VERSIONS = ("v1", "v1beta1")

# Every pattern is applied with fullmatch: `$` would let a trailing newline through (CI secrets carry one).
_PROJECT_RE = re.compile(r"(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")
_LOCATION_RE = re.compile(r"global|us|eu|[a-z]+-[a-z]+[0-9]{1,2}")
_ENDPOINT_RE = re.compile(r"openapi|[0-9]{1,20}")
_HOST_RE = re.compile(
    r"(?=[^:]{1,253}(?::|\Z))[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::[0-9]{1,5})?"
)
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PROFILE_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: Longest piece of a user's value an error message repeats.
SHOWN_CHARS = 80


def shown(value: object) -> str:
    """`repr(value)` for an error message, cut to SHOWN_CHARS (a 5,000-character value is not echoed whole)."""
    text = repr(value)
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[: SHOWN_CHARS - 1]}…({len(str(value))} chars)"


_DURATION_RE = re.compile(r"\s*([0-9]+)\s*(s|m|h)?\s*")


def parse_duration(value: str | int, what: str) -> int:
    """Seconds from `3600`, `3600s`, `60m` or `1h`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _DURATION_RE.fullmatch(str(value))
    if not match:
        raise ConfigError(
            f"invalid {what} {shown(str(value))}: expected seconds, or a number with s, m or h (e.g. 300, 5m, 1h)"
        )
    number, unit = int(match.group(1)), match.group(2) or "s"
    return number * {"s": 1, "m": 60, "h": 3600}[unit]


def format_duration(seconds: float) -> str:
    """`1h05m`, `4m10s`, `42s`, or `3.5s` under ten seconds (the inverse of parse_duration, for people)."""
    if seconds < 10:
        return f"{max(seconds, 0.0):.1f}s"
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def _check(pattern: re.Pattern[str], value: str, what: str, accepted: str) -> str:
    if not pattern.fullmatch(value):
        raise ConfigError(f"invalid {what} {shown(value)}: expected {accepted}")
    return value


def validate_project(value: str) -> str:
    return _check(
        _PROJECT_RE,
        value,
        "project",
        "a project id: 6-30 lowercase letters, digits or hyphens, starting with a letter",
    )


def validate_location(value: str) -> str:
    return _check(
        _LOCATION_RE, value, "location", "'global' or a region such as us-central1 or europe-west4"
    )


def validate_endpoint(value: str) -> str:
    return _check(_ENDPOINT_RE, value, "endpoint", "'openapi' (Gemini) or a numeric endpoint id")


def validate_api_version(value: str) -> str:
    if value not in API_VERSIONS:
        raise ConfigError(
            f"invalid api version {shown(value)}: expected one of {', '.join(API_VERSIONS)}"
        )
    return value


def validate_host(value: str) -> str:
    if value.split(":")[0] in ("0.0.0.0", "::", "[::]"):
        raise ConfigError(
            f"invalid host {shown(value)}: an unspecified address is not an API host "
            "(to choose where `serve` listens, use --listen)"
        )
    return _check(
        _HOST_RE,
        value,
        "host",
        "a host name with an optional :port, without scheme or path (e.g. my-psc.p.googleapis.com)",
    )


def validate_email(value: str) -> str:
    return _check(
        _EMAIL_RE, value, "service account", "an email such as sa@project.iam.gserviceaccount.com"
    )


def validate_lifetime(value: str | int) -> int:
    seconds = parse_duration(value, "lifetime")
    if not 1 <= seconds <= MAX_LIFETIME:
        raise ConfigError(f"invalid lifetime {seconds}s: expected 1s to 12h (43200s)")
    return seconds


def validate_min_ttl(value: str | int) -> int:
    seconds = parse_duration(value, "min TTL")
    if not 0 <= seconds <= 3000:
        raise ConfigError(
            f"invalid min TTL {seconds}s: expected 0 to 50m (3000s); tokens live at most 1h by default"
        )
    return seconds


def validate_timeout(value: str | int) -> int:
    seconds = parse_duration(value, "timeout")
    if not 1 <= seconds <= MAX_TIMEOUT:
        raise ConfigError(f"invalid timeout {seconds}s: expected 1s to 10m ({MAX_TIMEOUT}s)")
    return seconds


def validate_scopes(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    items = [
        s.strip() for s in (value.replace(",", " ").split() if isinstance(value, str) else value)
    ]
    items = [s for s in items if s]
    if not items:
        raise ConfigError("invalid scopes '': expected one or more https:// scope URLs")
    for scope in items:
        if not scope.startswith("https://"):
            raise ConfigError(
                f"invalid scope {shown(scope)}: expected an https:// scope URL such as {CLOUD_PLATFORM_SCOPE}"
            )
    return tuple(items)


def validate_credentials(value: str) -> str:
    if not value.strip():
        raise ConfigError("invalid credentials '': expected a file path or keyring:NAME")
    if value.startswith("keyring:") and not _PROFILE_NAME_RE.fullmatch(value[len("keyring:") :]):
        raise ConfigError(
            f"invalid credentials {shown(value)}: expected keyring:NAME with NAME of letters, digits, . _ -"
        )
    return value


def validate_profile_name(value: str) -> str:
    return _check(_PROFILE_NAME_RE, value, "profile name", "letters, digits, '.', '_' or '-'")


#: Boolean values of a switch's environment variable (those click accepts); anything else is a usage error.
TRUE_WORDS = ("1", "true", "t", "yes", "y", "on")
FALSE_WORDS = ("0", "false", "f", "no", "n", "off")
#: `export` formats that print text; SHELL_FORMATS set variables in a live shell (`export --unset` undoes them).
FORMATS = ("sh", "fish", "powershell", "cmd", "dotenv", "json")
SHELL_FORMATS = ("sh", "fish", "powershell", "cmd")
#: `export` formats that set up a CI job (vertex_env.ci) rather than print shell text.
CI_FORMATS = ("github", "gitlab", "circleci")


def parse_switch(value: str | bool) -> bool:
    """A switch from the command line (True) or from its variable (`1`, `yes`, `off`, … as click reads them)."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ConfigError(
        f"invalid value {shown(value)}: expected 1, true, yes or on; 0, false, no or off"
    )


def validate_format(value: str) -> str:
    if value not in FORMATS + CI_FORMATS:
        raise ConfigError(
            f"invalid format {shown(value)}: expected one of {', '.join(FORMATS + CI_FORMATS)}"
        )
    return value


#: Kinds of option: FIELD is a Profile field (flag > VERTEX_ENV_* > profile > Google's variables > default);
#: COMMON, VARIABLES and EXPORT are per-command choices (flag > VERTEX_ENV_* > default).
FIELD = "field"
#: --profile, --no-cache: every command that resolves a profile.
COMMON = "common"
#: --google, --legacy: every command that delivers the variables.
VARIABLES = "variables"
#: --format: `export` only.
EXPORT = "export"


class Option:
    """One option: its flag, its VERTEX_ENV_* variable, Google's own variables, its validator.

    The click options (vertex_env.commands.options) and the warm path's parser (vertex_env.fast) are both built
    from this table; every value is read by `value()` / `resolve()` below, never by click's `envvar=`."""

    __slots__ = (
        "choices",
        "default",
        "env",
        "flag",
        "google_env",
        "help",
        "kind",
        "metavar",
        "name",
        "switch",
        "validate",
    )

    def __init__(
        self,
        name: str,
        flag: str,
        env: str,
        google_env: tuple[str, ...],
        validate: Callable[[Any], Any],
        default: Any,
        help: str,
        *,
        kind: str = FIELD,
        switch: bool = False,
        metavar: str | None = None,
        choices: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.flag = flag
        self.env = env
        self.google_env = google_env
        self.validate = validate
        self.default = default
        self.help = help
        self.kind = kind
        self.switch = switch
        self.metavar = metavar or name.upper()
        self.choices = choices

    def __repr__(self) -> str:
        return f"Option({self.name!r}, {self.flag!r}, {self.env!r})"


#: Every option of every command, once.
ALL_OPTIONS: tuple[Option, ...] = (
    Option(
        "profile",
        "--profile",
        "VERTEX_ENV_PROFILE",
        (),
        validate_profile_name,
        None,
        "Profile from the config file.",
        kind=COMMON,
        metavar="NAME",
    ),
    Option(
        "no_cache",
        "--no-cache",
        "VERTEX_ENV_NO_CACHE",
        (),
        parse_switch,
        False,
        "Bypass the shared token cache.",
        kind=COMMON,
        switch=True,
    ),
    Option(
        "format",
        "--format",
        "VERTEX_ENV_FORMAT",
        (),
        validate_format,
        "sh",
        "Output format; sh (POSIX: bash, zsh, dash, ksh) unless given, whatever $SHELL says.",
        kind=EXPORT,
        choices=FORMATS + CI_FORMATS,
    ),
    Option(
        "google",
        "--google",
        "VERTEX_ENV_GOOGLE",
        (),
        parse_switch,
        False,
        "Also set GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION.",
        kind=VARIABLES,
        switch=True,
    ),
    Option(
        "legacy",
        "--legacy",
        "VERTEX_ENV_LEGACY",
        (),
        parse_switch,
        False,
        "Also set OPENAI_API_BASE for older clients.",
        kind=VARIABLES,
        switch=True,
    ),
    Option(
        "project",
        "--project",
        "VERTEX_ENV_PROJECT",
        ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"),
        validate_project,
        None,
        "Google Cloud project id.",
    ),
    Option(
        "location",
        "--location",
        "VERTEX_ENV_LOCATION",
        ("GOOGLE_CLOUD_LOCATION",),
        validate_location,
        DEFAULT_LOCATION,
        "Vertex location: 'global' or a region.",
    ),
    Option(
        "endpoint",
        "--endpoint",
        "VERTEX_ENV_ENDPOINT",
        (),
        validate_endpoint,
        DEFAULT_ENDPOINT,
        "'openapi' for Gemini, or a numeric endpoint id.",
    ),
    Option(
        "api_version",
        "--api-version",
        "VERTEX_ENV_API_VERSION",
        (),
        validate_api_version,
        DEFAULT_API_VERSION,
        "v1 or v1beta1.",
    ),
    Option(
        "host",
        "--host",
        "VERTEX_ENV_HOST",
        (),
        validate_host,
        None,
        "API host override (Private Service Connect, dedicated endpoints).",
    ),
    Option(
        "credentials",
        "--credentials",
        "VERTEX_ENV_CREDENTIALS",
        (),
        validate_credentials,
        None,
        "Credential file, or keyring:NAME (default: ADC).",
        metavar="FILE|keyring:NAME",
    ),
    Option(
        "impersonate",
        "--impersonate",
        "VERTEX_ENV_IMPERSONATE",
        (),
        validate_email,
        None,
        "Service account email to impersonate.",
        metavar="SA_EMAIL",
    ),
    Option(
        "lifetime",
        "--lifetime",
        "VERTEX_ENV_LIFETIME",
        (),
        validate_lifetime,
        DEFAULT_LIFETIME,
        "Impersonated token lifetime, up to 12h.",
        metavar="DURATION",
    ),
    Option(
        "quota_project",
        "--quota-project",
        "VERTEX_ENV_QUOTA_PROJECT",
        ("GOOGLE_CLOUD_QUOTA_PROJECT",),
        validate_project,
        None,
        "Project billed for quota (x-goog-user-project).",
    ),
    Option(
        "scopes",
        "--scopes",
        "VERTEX_ENV_SCOPES",
        (),
        validate_scopes,
        (CLOUD_PLATFORM_SCOPE,),
        "OAuth scopes, comma separated.",
    ),
    Option(
        "min_ttl",
        "--min-ttl",
        "VERTEX_ENV_MIN_TTL",
        (),
        validate_min_ttl,
        DEFAULT_MIN_TTL,
        "Least life a served token has left (e.g. 300, 5m).",
        metavar="DURATION",
    ),
    Option(
        "timeout",
        "--timeout",
        "VERTEX_ENV_TIMEOUT",
        (),
        validate_timeout,
        DEFAULT_TIMEOUT,
        "Most time spent reaching Google, across every retry (e.g. 20, 5s).",
        metavar="DURATION",
    ),
)
ALL_BY_NAME = {opt.name: opt for opt in ALL_OPTIONS}
#: The fields of a Profile, in the table's order.
OPTIONS = tuple(opt for opt in ALL_OPTIONS if opt.kind == FIELD)
OPTIONS_BY_NAME = {opt.name: opt for opt in OPTIONS}
#: The kinds of option each command of the warm path takes (the click commands are declared with the same).
COMMAND_KINDS = {"token": (COMMON, FIELD), "export": (EXPORT, VARIABLES, COMMON, FIELD)}
PROFILE_ENV = ALL_BY_NAME["profile"].env
EMULATOR_HOST_ENV = "VERTEX_ENV_EMULATOR_HOST"
#: Set by the transport seam on a request it rewrote to the emulator: the Google host it was meant for.
ORIGINAL_HOST_HEADER = "X-Vertex-Env-Original-Host"
CONFIG_ENV = "VERTEX_ENV_CONFIG"
PROFILE_KEYS = (*OPTIONS_BY_NAME, "write")


def given_value(
    opt: Option, given: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[Any, str]:
    """(raw value, where it came from) from the command line or the option's VERTEX_ENV_* variable, else
    (None, "default"). A value of None or () in `given` means "not given"."""
    raw = given.get(opt.name)
    if raw is not None and raw != ():
        return raw, f"flag {opt.flag}"
    if environ.get(opt.env):
        return environ[opt.env], f"env {opt.env}"
    return None, "default"


def checked(opt: Option, raw: Any, source: str) -> Any:
    """`opt.validate(raw)`; a bad value given to this command (flag or variable) is a usage error, the config
    file's a configuration error, each naming where it came from."""
    try:
        return opt.validate(raw)
    except ConfigError as err:
        cls = UsageError if source.startswith(("flag", "env")) else ConfigError
        raise cls(f"{err.message} (from {source})") from None


def value(name: str, given: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Any:
    """The value of a per-command option (COMMON, VARIABLES, EXPORT): flag > VERTEX_ENV_* > default."""
    opt = ALL_BY_NAME[name]
    raw, source = given_value(opt, given, os.environ if environ is None else environ)
    return opt.default if raw is None else checked(opt, raw, source)


@dataclass(frozen=True)
class Profile:
    """The resolved configuration. `sources[name]` says where each value came from."""

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
    write: tuple[str, ...] = ()
    timeout: int = DEFAULT_TIMEOUT
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def require_project(self) -> str:
        if not self.project:
            raise ConfigError(
                "no project configured",
                hint="pass --project, set VERTEX_ENV_PROJECT or GOOGLE_CLOUD_PROJECT, or run `vertex-env profile set default project=ID`",
            )
        return self.project


def emulator_host(environ: Mapping[str, str] | None = None) -> str | None:
    """`HOST:PORT` of the emulator when routing is on (VERTEX_ENV_EMULATOR_HOST), else None.

    `http://HOST:PORT` (with or without a trailing `/`) is taken as HOST:PORT; any other scheme or a path is
    refused (the emulator speaks plain HTTP on loopback)."""
    env = os.environ if environ is None else environ
    value = env.get(EMULATOR_HOST_ENV, "").strip()
    if value.lower().startswith("http://"):
        value = value[len("http://") :].rstrip("/")
    if (
        value
        and not _HOST_RE.fullmatch(value)
        and not re.fullmatch(r"\[[0-9a-fA-F:.]+\]:[0-9]{1,5}", value)
    ):
        raise UsageError(
            f"invalid {EMULATOR_HOST_ENV} {shown(env.get(EMULATOR_HOST_ENV, ''))}: expected HOST:PORT such as "
            "127.0.0.1:8765 (an http:// prefix is accepted; the emulator speaks plain HTTP)"
        )
    return value or None


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    explicit = env.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "vertex-env" / "config.toml"


def read_config(path: Path) -> dict[str, Any]:
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err}") from None
    # Imported only when there is a file: no config is the common case on the warm `export` path.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        with fh:
            data: dict[str, Any] = tomllib.load(fh)
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"cannot read config file {path}: byte {err.start} is not UTF-8 text (TOML files are UTF-8)"
        ) from None
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read config file {path}: {err}") from None
    check_config(data, path)
    return data


#: What the top level of the config file may hold.
TOP_LEVEL_KEYS = ("default_profile", "profiles")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)`, or nothing when no choice is close."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_config(data: Mapping[str, Any], path: Path) -> None:
    """The file's shape: known top-level keys, [profiles.NAME] tables, a default_profile that exists."""
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            kind = "table" if isinstance(data[key], dict) else "key"
            hint = did_you_mean(key, TOP_LEVEL_KEYS)
            if key == "profile" and isinstance(data[key], dict):
                hint = f" (did you mean [profiles.{next(iter(data[key]), 'NAME')}]?)"
            raise ConfigError(
                f"unknown top-level {kind} {shown(key)} in config file {path}{hint}; "
                f"expected {', '.join(TOP_LEVEL_KEYS)}"
            )
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise ConfigError(f"invalid config file {path}: [profiles.NAME] tables expected")
    if "default_profile" in data:
        default = data["default_profile"]
        if not isinstance(default, str):
            raise ConfigError(
                f"invalid default_profile {shown(default)} in config file {path}: expected a profile name"
            )
        if default not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise ConfigError(
                f"default_profile {shown(default)} in config file {path} names no profile"
                f"{did_you_mean(default, profiles)} (known profiles: {known})"
            )


def select_profile(
    data: Mapping[str, Any], requested: str | None, path: Path
) -> tuple[str | None, dict[str, Any]]:
    profiles: dict[str, dict[str, Any]] = data.get("profiles", {})
    if requested:
        if requested not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise ConfigError(
                f"unknown profile {shown(requested)} (known profiles: {known}; config file {path})"
            )
        return requested, profiles[requested]
    default_name = data.get("default_profile") or ("default" if "default" in profiles else None)
    if default_name and default_name in profiles:
        return str(default_name), profiles[default_name]
    return None, {}


def gcloud_project(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """gcloud's configured project, read from its config files (no 0.8 s subprocess)."""
    import configparser  # only when no other source named a project

    config_dir = Path(
        environ.get("CLOUDSDK_CONFIG")
        or Path(environ.get("HOME") or Path.home()) / ".config" / "gcloud"
    )
    active = environ.get("CLOUDSDK_ACTIVE_CONFIG_NAME")
    if not active:
        try:
            active = (config_dir / "active_config").read_text().strip() or "default"
        except OSError:
            active = "default"
    path = config_dir / "configurations" / f"config_{active}"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error:
        return None
    project = parser.get("core", "project", fallback="").strip()
    return (project, f"gcloud config {path}") if project else None


_LIST_KEYS = ("scopes", "write")
_DURATION_KEYS = ("lifetime", "min_ttl", "timeout")


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
    path = config_path(env)
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

    writes = table.get("write", ())
    if isinstance(writes, str):
        writes = (writes,)
    _check_type("write", writes, f"profile {name} ({path})")
    result = Profile(name=name, write=tuple(str(w) for w in writes), sources=sources, **values)
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
                result = Profile(**{**result.__dict__, "project": project, "sources": sources})
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
            result = Profile(**{**result.__dict__, "quota_project": quota, "sources": sources})
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

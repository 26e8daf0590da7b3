"""The option table: every option of every command once — its flag, its VERTEX_ENV_* variable, its check.

The click options (vertex_env.cli.commands.options) and the click-free warm path (vertex_env.cli.entry) are built from
`ALL_OPTIONS`; `value()` reads a per-command option and `vertex_env.config.profile.profile_from` the profile's fields,
both through `given_value()` (flag > VERTEX_ENV_*). Nothing here imports typing or dataclasses: this module is
on the warm `export` path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from vertex_env.config.values import (
    CI_FORMATS,
    CLOUD_PLATFORM_SCOPE,
    DEFAULT_API_VERSION,
    DEFAULT_CHECK_MODEL,
    DEFAULT_ENDPOINT,
    DEFAULT_LIFETIME,
    DEFAULT_LOCATION,
    DEFAULT_MIN_TTL,
    DEFAULT_TIMEOUT,
    FORMATS,
    LOG_FORMATS,
    location_shape,
    parse_switch,
    validate_address,
    validate_allow_hosts,
    validate_api_version,
    validate_base_url,
    validate_credentials,
    validate_directory_path,
    validate_drain_timeout,
    validate_email,
    validate_endpoint,
    validate_existing_file,
    validate_expires_in,
    validate_file_path,
    validate_format,
    validate_host,
    validate_lifetime,
    validate_log_format,
    validate_min_ttl,
    validate_model,
    validate_port,
    validate_profile_name,
    validate_project,
    validate_scopes,
    validate_timeout,
)
from vertex_env.errors import ConfigError, UsageError

TYPE_CHECKING = False  # typing stays off the warm `export` path (vertex_env.cli.entry)
if TYPE_CHECKING:
    from typing import Any

#: Kinds of option: FIELD is a Profile field (flag > VERTEX_ENV_* > profile > Google's variables > default);
#: COMMON, VARIABLES and EXPORT are per-command choices (flag > VERTEX_ENV_* > default).
FIELD = "field"
#: --profile, --no-cache, --debug: every command that resolves a profile.
COMMON = "common"
#: --google, --legacy: every command that delivers the variables.
VARIABLES = "variables"
#: --format: `export` only.
EXPORT = "export"
#: --model, --no-call, --via: `check` only.
CHECK = "check"
#: --listen, --port, --write-env, …: `serve` only.
SERVE = "serve"
#: --port, --expires-in, --write-credentials: `emulator` only.
EMULATOR = "emulator"


class Option:
    """One option: its flag, its VERTEX_ENV_* variable, Google's own variables, its validator.

    The click options (vertex_env.cli.commands.options) and the warm path's parser (vertex_env.cli.entry) are both built
    from this table; every value is read by `value()` below or `vertex_env.config.profile.profile_from`, never by click's `envvar=`."""

    __slots__ = (
        "aliases",
        "choices",
        "complete",
        "default",
        "env",
        "flag",
        "google_env",
        "help",
        "kind",
        "metavar",
        "name",
        "repeat",
        "show_default",
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
        complete: str = "",
        aliases: tuple[str, ...] = (),
        show_default: bool = False,
        repeat: bool = False,
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
        #: What shell completion offers for the value: "profile" (the config file's profiles), "file", or "".
        self.complete = complete
        #: Other flags for the same option (`--bind` for `--listen`).
        self.aliases = aliases
        #: Whether --help shows the default (the per-command options whose default is not "unset").
        self.show_default = show_default
        #: Whether the flag may be given several times (its values arrive as a tuple; the variable holds a
        #: comma-separated list).
        self.repeat = repeat

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
        complete="profile",
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
        "debug",
        "--debug",
        "VERTEX_ENV_DEBUG",
        (),
        parse_switch,
        False,
        "Log each request to Google on stderr (method, URL, status, time; secrets redacted).",
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
        "model",
        "--model",
        "VERTEX_ENV_MODEL",
        (),
        validate_model,
        DEFAULT_CHECK_MODEL,
        f"Model to send the one request to (default {DEFAULT_CHECK_MODEL}; an embedding model is asked "
        "at /embeddings).",
        kind=CHECK,
        metavar="MODEL",
    ),
    Option(
        "no_call",
        "--no-call",
        "VERTEX_ENV_NO_CALL",
        (),
        parse_switch,
        False,
        "Check everything but send no request to Vertex.",
        kind=CHECK,
        switch=True,
    ),
    Option(
        "via",
        "--via",
        "VERTEX_ENV_CHECK_VIA",
        (),
        validate_base_url,
        None,
        "Check a running `serve` at this OPENAI_BASE_URL as an app would (key: OPENAI_API_KEY or --key-file).",
        kind=CHECK,
        metavar="URL",
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
        location_shape,  # whether Vertex serves it: profile_from, which knows the host
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
        complete="file",
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
    # -- serve ---------------------------------------------------------------------------------------------
    Option(
        "listen_host",
        "--listen",
        "VERTEX_ENV_PROXY_LISTEN",
        (),
        validate_address,
        "127.0.0.1",
        "Address to listen on: loopback (127.0.0.1, ::1, localhost), or with a fixed key (--key-file or "
        "VERTEX_ENV_PROXY_KEY) any address of this machine, 0.0.0.0 or :: (containers, other machines).",
        kind=SERVE,
        metavar="ADDRESS",
        aliases=("--bind",),
        show_default=True,
    ),
    Option(
        "port",
        "--port",
        "VERTEX_ENV_PROXY_PORT",
        (),
        validate_port,
        0,
        "Port to listen on; 0 picks a free one.",
        kind=SERVE,
        metavar="N",
    ),
    Option(
        "write_env",
        "--write-env",
        "VERTEX_ENV_PROXY_WRITE_ENV",
        (),
        validate_file_path,
        None,
        "Write OPENAI_BASE_URL and OPENAI_API_KEY to this dotenv file (mode 0600) instead of stdout.",
        kind=SERVE,
        metavar="PATH",
        complete="file",
    ),
    Option(
        "key_file",
        "--key-file",
        "VERTEX_ENV_PROXY_KEY_FILE",
        (),
        validate_existing_file,
        None,
        "Read a fixed local key from FILE (default: random per run; or set VERTEX_ENV_PROXY_KEY).",
        kind=SERVE,
        metavar="FILE",
        complete="file",
    ),
    Option(
        "allow_hosts",
        "--allow-host",
        "VERTEX_ENV_PROXY_ALLOW_HOSTS",
        (),
        validate_allow_hosts,
        (),
        "Also answer requests whose Host is NAME (repeatable; the variable: comma separated), e.g. the name "
        "containers reach this proxy by. Loopback and the listening address are always allowed; other Hosts get 421.",
        kind=SERVE,
        metavar="NAME",
        repeat=True,
    ),
    Option(
        "tls_cert",
        "--tls-cert",
        "VERTEX_ENV_PROXY_TLS_CERT",
        (),
        validate_existing_file,
        None,
        "Serve https with this PEM certificate (chain); needs --tls-key.",
        kind=SERVE,
        metavar="FILE",
        complete="file",
    ),
    Option(
        "tls_key",
        "--tls-key",
        "VERTEX_ENV_PROXY_TLS_KEY",
        (),
        validate_existing_file,
        None,
        "The certificate's PEM private key (unencrypted; yours, mode 0600, as --key-file); needs --tls-cert.",
        kind=SERVE,
        metavar="FILE",
        complete="file",
    ),
    Option(
        "log_format",
        "--log-format",
        "VERTEX_ENV_PROXY_LOG_FORMAT",
        (),
        validate_log_format,
        "text",
        "stderr as today's text, or one JSON object a line (a line per request too).",
        kind=SERVE,
        choices=LOG_FORMATS,
        show_default=True,
    ),
    Option(
        "drain_timeout",
        "--drain-timeout",
        "VERTEX_ENV_PROXY_DRAIN_TIMEOUT",
        (),
        validate_drain_timeout,
        25.0,
        "On SIGTERM, let in-flight requests and streams finish this long, then exit 0.",
        kind=SERVE,
        metavar="SECONDS",
        show_default=True,
    ),
    Option(
        "ops_listen",
        "--ops-listen",
        "VERTEX_ENV_PROXY_OPS_LISTEN",
        (),
        validate_address,
        None,
        "Also serve /healthz, /readyz and /metrics (nothing else) here, on any address: for probes and scrapers.",
        kind=SERVE,
        metavar="HOST:PORT",
    ),
    # -- emulator ------------------------------------------------------------------------------------------
    Option(
        "emulator_port",
        "--port",
        "VERTEX_ENV_EMULATOR_PORT",
        (),
        validate_port,
        0,
        "Port to listen on; 0 picks a free one.",
        kind=EMULATOR,
        metavar="N",
    ),
    Option(
        "expires_in",
        "--expires-in",
        "VERTEX_ENV_EMULATOR_EXPIRES_IN",
        (),
        validate_expires_in,
        3600,
        "Lifetime of the access tokens it issues.",
        kind=EMULATOR,
        metavar="SECONDS",
        show_default=True,
    ),
    Option(
        "write_credentials",
        "--write-credentials",
        "VERTEX_ENV_EMULATOR_WRITE_CREDENTIALS",
        (),
        validate_directory_path,
        None,
        "Write synthetic authorized_user.json, service_account.json and external_account.json there (and "
        "export the first as GOOGLE_APPLICATION_CREDENTIALS).",
        kind=EMULATOR,
        metavar="DIR",
        complete="file",
    ),
)
ALL_BY_NAME = {opt.name: opt for opt in ALL_OPTIONS}
#: The fields of a Profile, in the table's order.
OPTIONS = tuple(opt for opt in ALL_OPTIONS if opt.kind == FIELD)
OPTIONS_BY_NAME = {opt.name: opt for opt in OPTIONS}
#: The kinds of option each command of the warm path takes (the click commands are declared with the same).
COMMAND_KINDS = {"token": (COMMON, FIELD), "export": (EXPORT, VARIABLES, COMMON, FIELD)}
PROFILE_ENV = ALL_BY_NAME["profile"].env
PROFILE_KEYS = (*OPTIONS_BY_NAME, "write", "models", "models_only", "models_ttl")


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
    """The value of a per-command option (COMMON, VARIABLES, EXPORT, SERVE, EMULATOR): flag > VERTEX_ENV_* >
    default; a bad value is a UsageError naming the flag or the variable it came from."""
    opt = ALL_BY_NAME[name]
    raw, source = given_value(opt, given, os.environ if environ is None else environ)
    return opt.default if raw is None else checked(opt, raw, source)

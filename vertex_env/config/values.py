"""Checks of single values: project ids, locations, hosts, emails, durations, switches, formats.

Each validator takes the raw text (or number) and returns the value or raises ConfigError saying what is
accepted; the option table (vertex_env.config.options) decides whether a failure is a usage or a config error.
This module imports only the standard library's `re`; it is on the warm `export` path.
"""

from __future__ import annotations

import re

from vertex_env.errors import ConfigError

TYPE_CHECKING = False  # typing and pathlib stay off the warm `export` path (vertex_env.cli.entry)
if TYPE_CHECKING:
    from pathlib import Path

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
#: The model `vertex-env check` asks when none is named: a GA Gemini model every Vertex location serves.
DEFAULT_CHECK_MODEL = "google/gemini-2.5-flash"

# Every pattern is applied with re.fullmatch (`$` would let a trailing newline through: CI secrets carry one),
# and compiled on first use by re's own cache, not at import: most commands check only a few of them.
_PROJECT_RE = r"(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]"
_LOCATION_RE = r"global|us|eu|[a-z]+-[a-z]+[0-9]{1,2}"
_ENDPOINT_RE = r"openapi|[0-9]{1,20}"
#: A host name with an optional :port (what --host and VERTEX_ENV_EMULATOR_HOST take).
HOST_PATTERN = (
    r"(?=[^:]{1,253}(?::|\Z))[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::[0-9]{1,5})?"
)
_EMAIL_RE = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
_PROFILE_NAME_RE = r"[A-Za-z0-9_.-]{1,64}"
#: Longest piece of a user's value an error message repeats.
SHOWN_CHARS = 80


def shown(value: object) -> str:
    """`repr(value)` for an error message, cut to SHOWN_CHARS (a 5,000-character value is not echoed whole)."""
    text = repr(value)
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[: SHOWN_CHARS - 1]}…({len(str(value))} chars)"


_DURATION_RE = r"\s*([0-9]+)\s*(s|m|h)?\s*"


def parse_duration(value: str | int, what: str) -> int:
    """Seconds from `3600`, `3600s`, `60m` or `1h`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = re.fullmatch(_DURATION_RE, str(value))
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


def _check(pattern: str, value: str, what: str, accepted: str) -> str:
    if not re.fullmatch(pattern, value):
        raise ConfigError(f"invalid {what} {shown(value)}: expected {accepted}")
    return value


def validate_project(value: str) -> str:
    if re.fullmatch(_PROJECT_RE, value):
        return value
    # Two mistakes Google answers with CONSUMER_INVALID: name them as what they are.
    if value.isdigit():
        kind = "that is a project number, not its id; "
    elif " " in value.strip() or value != value.lower():
        kind = "that looks like a project's display name, not its id; "
    else:
        kind = ""
    raise ConfigError(
        f"invalid project {shown(value)}: expected a project id: 6-30 lowercase letters, digits or "
        f"hyphens, starting with a letter ({kind}`gcloud projects list` shows each project's id)"
    )


#: The locations Vertex AI serves generative models in (Google's "Generative AI on Vertex AI locations",
#: LOCATIONS_SOURCE): `global` and the regional hosts `{location}-aiplatform.googleapis.com`. The one list: the
#: location check, `vertex-env check`, Google's refusal table and the emulator all read it.
VERTEX_LOCATIONS: tuple[str, ...] = (
    "global",
    "us-central1",
    "us-east1",
    "us-east4",
    "us-east5",
    "us-south1",
    "us-west1",
    "us-west4",
    "northamerica-northeast1",
    "southamerica-east1",
    "europe-central2",
    "europe-north1",
    "europe-southwest1",
    "europe-west1",
    "europe-west2",
    "europe-west3",
    "europe-west4",
    "europe-west6",
    "europe-west8",
    "europe-west9",
    "asia-east1",
    "asia-east2",
    "asia-northeast1",
    "asia-northeast3",
    "asia-south1",
    "asia-southeast1",
    "australia-southeast1",
    "me-central1",
    "me-central2",
    "me-west1",
)
LOCATIONS_SOURCE = "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/locations"


def location_shape(value: str) -> str:
    """A location's shape only (`global`, `us`, `eu` or `name-direction1`): the option table's check; whether
    Vertex serves it is `validate_location`'s, which needs the profile's host."""
    return _check(
        _LOCATION_RE, value, "location", "'global' or a region such as us-central1 or europe-west4"
    )


def validate_location(value: str, *, hosted: bool = False) -> str:
    """A location Vertex AI serves generative models in; `hosted` (the profile sets a custom host: Private
    Service Connect, a proxy): any location of the right shape, that host may serve one this list lacks."""
    location_shape(value)
    if not hosted and value not in VERTEX_LOCATIONS:
        import difflib

        close = difflib.get_close_matches(value, VERTEX_LOCATIONS, n=1, cutoff=0.8)
        maybe = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"invalid location {shown(value)}: Vertex AI serves no generative models there{maybe}; "
            f"its locations: {LOCATIONS_SOURCE} (with --host any location is accepted)"
        )
    return value


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
        HOST_PATTERN,
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
    if value.startswith("keyring:") and not re.fullmatch(
        _PROFILE_NAME_RE, value[len("keyring:") :]
    ):
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
#: `export` formats that set up a CI job (vertex_env.sinks.ci) rather than print shell text.
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


def validate_model(value: str) -> str:
    """A model id as a client sends it (`google/gemini-2.5-flash`): printable, no blanks."""
    if not value or len(value) > 256 or not value.isprintable() or any(c.isspace() for c in value):
        raise ConfigError(
            f"invalid model {shown(value)}: expected a model id such as {DEFAULT_CHECK_MODEL}"
        )
    return value


def validate_base_url(value: str) -> str:
    """An http(s) URL such as the OPENAI_BASE_URL `serve` prints."""
    if not re.fullmatch(r"https?://[^\s/?#]+(?:/[^\s?#]*)?", value):
        raise ConfigError(
            f"invalid URL {shown(value)}: expected serve's OPENAI_BASE_URL, "
            "e.g. http://127.0.0.1:8787/v1/projects/P/locations/global/endpoints/openapi"
        )
    return value


def validate_format(value: str) -> str:
    if value not in FORMATS + CI_FORMATS:
        raise ConfigError(
            f"invalid format {shown(value)}: expected one of {', '.join(FORMATS + CI_FORMATS)}"
        )
    return value


# -- `serve` and `emulator` ----------------------------------------------------------------------------------


def validate_port(value: str | int) -> int:
    """A TCP port to listen on, 0 for a free one."""
    try:
        port = int(str(value).strip())
    except ValueError:
        raise ConfigError(
            f"invalid port {shown(value)}: expected a number from 0 to 65535"
        ) from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"invalid port {port}: expected a number from 0 to 65535")
    return port


def validate_drain_timeout(value: str | float) -> float:
    """Seconds `serve` lets in-flight requests finish after SIGTERM: 0 to 3600."""
    try:
        seconds = float(str(value).strip())
    except ValueError:
        seconds = float("nan")
    if not 0 <= seconds <= 3600:  # NaN fails too
        raise ConfigError(f"invalid drain timeout {shown(value)}: expected 0 to 3600 seconds")
    return seconds


def validate_expires_in(value: str | int) -> int:
    """Seconds of life of the emulator's tokens: 1 or more."""
    try:
        seconds = int(str(value).strip())
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise ConfigError(
            f"invalid token lifetime {shown(value)}: expected a whole number of seconds, 1 or more"
        )
    return seconds


LOG_FORMATS = ("text", "json")


def validate_log_format(value: str) -> str:
    if value not in LOG_FORMATS:
        raise ConfigError(f"invalid log format {shown(value)}: expected text or json")
    return value


def validate_address(value: str) -> str:
    """An address as given (the command checks what it may be: loopback only, or HOST:PORT)."""
    if not value.strip():
        raise ConfigError("invalid address '': expected an address")
    return value


#: A name a client may send as Host (`--allow-host`): a DNS name (underscores too, as container names have),
#: an IPv4 address, or an IPv6 address with or without brackets; no port, no wildcard.
_ALLOWED_HOST_RE = (
    r"(?=.{1,253}\Z)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*"
    r"|\[?[0-9a-f:.]{2,45}\]?"
)


def validate_allow_hosts(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Host names `serve` answers to besides loopback and its address: repeated flags, each of which (and the
    variable) may hold several, comma separated. Lowercased; IPv6 brackets dropped."""
    items = [value] if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        for part in item.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if not re.fullmatch(_ALLOWED_HOST_RE, name):
                raise ConfigError(
                    f"invalid allowed host {shown(part.strip())}: expected a host name or an IP address, "
                    "without scheme, port or wildcard (e.g. vertex-env or host.docker.internal)"
                )
            names.append(name.strip("[]"))
    if not names:
        raise ConfigError("invalid allowed host '': expected a host name or an IP address")
    return tuple(dict.fromkeys(names))


def validate_file_path(value: str | Path) -> Path:
    """A file to write: anything but an existing directory."""
    from pathlib import Path

    path = Path(value)
    if path.is_dir():
        raise ConfigError(f"invalid file {shown(str(value))}: it is a directory")
    return path


def validate_existing_file(value: str | Path) -> Path:
    """A file to read: it must exist and not be a directory."""
    from pathlib import Path

    path = Path(value)
    if not path.exists():
        raise ConfigError(f"invalid file {shown(str(value))}: it does not exist")
    if path.is_dir():
        raise ConfigError(f"invalid file {shown(str(value))}: it is a directory")
    return path


def validate_directory_path(value: str | Path) -> Path:
    """A directory to write into: anything but an existing file."""
    from pathlib import Path

    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"invalid directory {shown(str(value))}: it is a file")
    return path

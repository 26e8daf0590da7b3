"""The profile's model table: where each model a client names is served (`[profiles.NAME.models]`).

```toml
[profiles.team]
models_only = false        # /models lists only the models below (default: also Google's catalog and endpoints)
models_ttl = "1h"          # how long `serve` keeps the model list before refreshing it in the background
[profiles.team.models]
"google/gemini-3-pro-preview" = { location = "global" }
"llama-3-70b" = { endpoint = "1234567890", location = "us-east5" }
```

An entry's `location` defaults to the profile's, its `endpoint` to `openapi` (Gemini and Model Garden's managed
models); a numeric `endpoint` is a self-deployed endpoint's ID. Nothing here imports typing: the table is read
on the warm `export` path with the rest of the profile.
"""

from __future__ import annotations

from vertex_env.config.values import (
    parse_duration,
    shown,
    validate_location,
    validate_model,
)
from vertex_env.errors import ConfigError
from vertex_env.system.record import Record

TYPE_CHECKING = False  # typing stays off the warm `export` path (vertex_env.cli.entry)
if TYPE_CHECKING:
    from typing import Any

#: The keys of one entry of the table.
MODEL_KEYS = ("location", "endpoint")
#: How long `serve` keeps its model list by default (seconds).
DEFAULT_MODELS_TTL = 3600
#: The shortest and longest cache life accepted.
MODELS_TTL_RANGE = (10, 7 * 24 * 3600)


class ModelPlace(Record):
    """Where one configured model is served: `location` (None: the profile's) and `endpoint` (`openapi` or a
    self-deployed endpoint's numeric ID)."""

    __slots__ = ("endpoint", "location", "model")

    model: str
    location: str | None
    endpoint: str

    def __init__(self, model: str, location: str | None = None, endpoint: str = "openapi") -> None:
        self._set(model=model, location=location, endpoint=endpoint)

    def __repr__(self) -> str:
        return f"ModelPlace({self.model!r}, location={self.location!r}, endpoint={self.endpoint!r})"

    def as_toml(self) -> dict[str, str]:
        """The entry as the config file holds it (only what differs from the defaults)."""
        entry: dict[str, str] = {}
        if self.location is not None:
            entry["location"] = self.location
        if self.endpoint != "openapi":
            entry["endpoint"] = self.endpoint
        return entry


def _endpoint(raw: object, where: str) -> str:
    text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
    if not isinstance(text, str) or not (text == "openapi" or (text.isascii() and text.isdigit())):
        raise ConfigError(
            f"invalid endpoint {shown(raw)} for {where}: expected a numeric endpoint ID "
            "(a self-deployed model) or 'openapi'"
        )
    return text


def model_place(model: str, entry: object, source: str, hosted: str | None = None) -> ModelPlace:
    """One entry of the table, checked: `{location = "…", endpoint = "…"}` (both optional). Its location is
    one Vertex serves models in, or `hosted`: the profile's location when a custom host serves it."""
    try:
        validate_model(model)
    except ConfigError as err:
        raise ConfigError(f"{err.message} (a key of the models table, from {source})") from None
    where = f"model {model!r} ({source})"
    if not isinstance(entry, dict):
        raise ConfigError(
            f"invalid entry for {where}: expected a table such as "
            '{ location = "global" } or { endpoint = "1234567890", location = "us-east5" }'
        )
    unknown = sorted(set(entry) - set(MODEL_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key {shown(unknown[0])} for {where}: expected {' or '.join(MODEL_KEYS)}"
        )
    location = entry.get("location")
    if location is not None:
        if not isinstance(location, str):
            raise ConfigError(f"invalid location {shown(location)} for {where}: expected a string")
        try:
            validate_location(location, hosted=location == hosted)
        except ConfigError as err:
            raise ConfigError(f"{err.message} (for {where})") from None
    endpoint = _endpoint(entry.get("endpoint", "openapi"), where)
    return ModelPlace(model, location, endpoint)


def model_table(raw: object, source: str, hosted: str | None = None) -> tuple[ModelPlace, ...]:
    """The `models` table of a profile, every entry checked (ConfigError, exit 3, on the first bad one);
    `hosted` as for `model_place`."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ConfigError(
            f"invalid models {shown(raw)}: expected a table of model ids (from {source}), e.g. "
            '[profiles.NAME.models] "google/gemini-3-pro-preview" = { location = "global" }'
        )
    return tuple(model_place(str(model), entry, source, hosted) for model, entry in raw.items())


def models_only(raw: object, source: str) -> bool:
    if raw is None:
        return False
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false", "1", "0", "yes", "no"):
        return raw.lower() in ("true", "1", "yes")
    raise ConfigError(f"invalid models_only {shown(raw)}: expected true or false (from {source})")


def models_ttl(raw: object, source: str) -> int:
    if raw is None:
        return DEFAULT_MODELS_TTL
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ConfigError(
            f"invalid models_ttl {shown(raw)}: expected seconds or a duration such as '1h' (from {source})"
        )
    seconds = parse_duration(raw, "models_ttl")
    low, high = MODELS_TTL_RANGE
    if not low <= seconds <= high:
        raise ConfigError(
            f"invalid models_ttl {seconds}s: expected {low}s to 7 days (from {source})"
        )
    return seconds


def parse_assignment(key: str, raw: str, hosted: str | None = None) -> tuple[str, dict[str, Any]]:
    """`profile set NAME models.ID=location=L,endpoint=E` → (ID, its entry); ConfigError when bad. `hosted` as
    for `model_place`."""
    model = key[len("models.") :]
    entry: dict[str, Any] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise ConfigError(
                f"invalid model entry {shown(raw)}: expected location=LOCATION and/or endpoint=ID, "
                "e.g. models.llama-3-70b=endpoint=1234567890,location=us-east5"
            )
        entry[name.strip()] = value.strip()
    place = model_place(model, entry, "the command line", hosted)
    return place.model, place.as_toml()

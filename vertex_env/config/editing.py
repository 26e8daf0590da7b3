"""Editing profiles in the config file without losing the user's other settings or comments (tomlkit)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vertex_env.config import models as config_models
from vertex_env.config.file import config_path, did_you_mean, read_config
from vertex_env.config.options import OPTIONS_BY_NAME, PROFILE_KEYS
from vertex_env.config.values import (
    DEFAULT_LOCATION,
    shown,
    validate_location,
    validate_profile_name,
)
from vertex_env.errors import ConfigError, UsageError
from vertex_env.system.files import atomic_write, cache_dir, resolve_safely, writers_locked

#: How long a profile edit waits for another one (edits take milliseconds).
LOCK_TIMEOUT = 10.0


def list_profiles(path: Path | None = None) -> tuple[list[str], str | None]:
    path = path or config_path()
    data = read_config(path)
    names = sorted(data.get("profiles", {}))
    default = data.get("default_profile") or ("default" if "default" in names else None)
    return names, default


def show_profile(name: str, path: Path | None = None) -> dict[str, Any]:
    path = path or config_path()
    profiles = read_config(path).get("profiles", {})
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(f"unknown profile {name!r} (known profiles: {known}; config file {path})")
    return dict(profiles[name])


def _coerce(key: str, raw: str) -> Any:
    """A `key=value` argument, validated: a bad one is a usage error (exit 2)."""
    if key == "models":
        raise UsageError(
            "set one model at a time: models.ID=location=LOCATION,endpoint=ENDPOINT "
            "(e.g. models.llama-3-70b=endpoint=1234567890,location=us-east5)"
        )
    if key in ("models_only", "models_ttl"):
        check = config_models.models_only if key == "models_only" else config_models.models_ttl
        try:
            return check(raw, "the command line")
        except ConfigError as err:
            raise UsageError(err.message) from None
    if key not in PROFILE_KEYS:
        raise UsageError(
            f"unknown profile key {shown(key)}{did_you_mean(key, PROFILE_KEYS)}: "
            f"expected one of {', '.join(PROFILE_KEYS)}"
        )
    if key == "write":
        return [_absolute(p) for p in raw.split(",") if p]
    try:
        value = OPTIONS_BY_NAME[key].validate(raw)
    except ConfigError as err:
        raise UsageError(err.message) from None
    return list(value) if isinstance(value, tuple) else value


def _absolute(raw: str) -> str:
    """A `write` path as given when it is absolute (`~` and `$VAR` kept, as a dotfile would hold it), else made
    absolute against the working directory: the daemon runs elsewhere (`/` under systemd)."""
    if Path(os.path.expandvars(raw)).expanduser().is_absolute():
        return raw
    return os.path.abspath(raw)


def set_values(name: str, assignments: list[str], path: Path | None = None) -> Path:
    """`key=value` pairs into [profiles.NAME], validated; everything else in the file is kept."""
    import tomlkit

    try:
        validate_profile_name(name)
    except ConfigError as err:
        raise UsageError(err.message) from None
    path = path or config_path()
    values: dict[str, Any] = {}
    models: list[tuple[str, str]] = []
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep:
            raise UsageError(
                f"invalid assignment {shown(item)}: expected KEY=VALUE (e.g. project=my-project)"
            )
        key = key.strip()
        if key.startswith("models."):  # a model id is kept as written (it may hold '-' and '/')
            models.append((key, raw.strip()))  # checked below, once the profile's host is known
            continue
        key = key.replace("-", "_")
        values[key] = _coerce(key, raw.strip())
    with _editing(path) as doc:
        profiles = doc.setdefault("profiles", tomlkit.table(is_super_table=True))
        table = profiles.setdefault(name, tomlkit.table())
        for key, value in values.items():
            table[key] = value
        # the profile's location and its models' as profile_from will check them (nothing saved on an error):
        # with a custom host, any location of the right shape for the profile's own
        location = str(table.get("location", DEFAULT_LOCATION))
        hosted = location if table.get("host") is not None else None
        try:
            if "location" in values:
                validate_location(location, hosted=hosted is not None)
            parsed = dict(config_models.parse_assignment(k, raw, hosted) for k, raw in models)
        except ConfigError as err:
            raise UsageError(err.message) from None
        if parsed:
            known = table.setdefault("models", tomlkit.table())
            for model, entry in parsed.items():
                inline = tomlkit.inline_table()
                inline.update(entry)
                known[model] = inline
    return path


def remove(name: str, keys: list[str], path: Path | None = None) -> Path:
    path = path or config_path()
    with _editing(path) as doc:
        show_profile(name, path)
        if keys:
            table = doc["profiles"][name]
            for key in keys:
                if key.startswith("models."):
                    known = table.get("models")
                    if known is not None:
                        known.pop(key[len("models.") :], None)
                        if not known:
                            table.pop("models")
                    continue
                table.pop(key.replace("-", "_"), None)
        else:
            del doc["profiles"][name]
            if doc.get("default_profile") == name:
                del doc["default_profile"]
    return path


def set_default(name: str, path: Path | None = None) -> Path:
    path = path or config_path()
    with _editing(path) as doc:
        show_profile(name, path)
        doc["default_profile"] = name
    return path


@contextlib.contextmanager
def _editing(path: Path) -> Iterator[Any]:
    """The parsed config file, saved back on success: locked against a concurrent edit, written atomically to
    the file a symlink points at (a dotfiles manager's link stays a link)."""
    try:
        with _locked_edit(path) as doc:
            yield doc
    except OSError as err:  # a read-only file or store (home-manager), an unwritable HOME
        where = err.filename or path
        raise ConfigError(
            f"cannot write the config file {path}: {err.strerror or err} ({where})"
        ) from None


@contextlib.contextmanager
def _locked_edit(path: Path) -> Iterator[Any]:
    import tomlkit

    target = resolve_safely(path)  # not through another user's link in a shared folder
    target.parent.mkdir(parents=True, exist_ok=True)
    # The lock is kept out of the config's folder: config.toml is often a link into a dotfiles repository.
    with writers_locked(target, cache_dir(), LOCK_TIMEOUT, what=f"the config file {target}"):
        read_config(target)  # refuses a broken file before we rewrite it
        try:
            doc = tomlkit.parse(target.read_text(encoding="utf-8"))
        except FileNotFoundError:
            doc = tomlkit.document()
        yield doc
        mode = 0o600
        with contextlib.suppress(FileNotFoundError):
            mode = os.stat(target).st_mode & 0o777
        atomic_write(target, tomlkit.dumps(doc).encode("utf-8"), mode=mode)

"""The config file (`~/.config/vertex-env/config.toml`) and gcloud's: where they are, reading and checking them.

tomllib and configparser are imported only when there is a file to read, and pathlib (with urllib.parse and
ipaddress behind it) only by `config_path()`: the warm path uses the text form, `config_file()`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping

from vertex_env.config.values import shown
from vertex_env.errors import ConfigError

TYPE_CHECKING = False  # typing stays off the warm `export` path (vertex_env.cli.entry)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    StrPath = str | os.PathLike[str]

CONFIG_ENV = "VERTEX_ENV_CONFIG"


def config_file(environ: Mapping[str, str] | None = None) -> str:
    """Where the config file is: VERTEX_ENV_CONFIG, else `$XDG_CONFIG_HOME/vertex-env/config.toml`, else
    `~/.config/vertex-env/config.toml` (as text, normalised as a Path would print it)."""
    env = os.environ if environ is None else environ
    explicit = env.get(CONFIG_ENV)
    if explicit:
        return _clean(os.path.expanduser(explicit))
    home = env.get("HOME") or os.path.expanduser("~")
    base = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return _clean(os.path.join(base, "vertex-env", "config.toml"))


def _clean(path: str) -> str:
    """`a//b/./c/` as `a/b/c`, the way pathlib prints it (unlike normpath, `..` is kept: a symlink may be on the
    way)."""
    keep_root = (
        "//" if path.startswith("//") and not path.startswith("///") else "/" * (path[:1] == "/")
    )
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return keep_root + "/".join(parts) if parts or keep_root else "."


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """`config_file()` as a Path."""
    from pathlib import Path

    return Path(config_file(environ))


def read_config(path: StrPath) -> dict[str, Any]:
    """The config file's tables ({} when there is none). It sets where tokens go (`host`, `base_url`), so it
    must be ours or root's, a regular file, not reached through another user's link (UnsafeFileError, exit 9)."""
    from vertex_env.system.files import read_user_file

    try:
        raw = read_user_file(path, what="config file").data or b""
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ConfigError(
            f"cannot read config file {_shown(path)}: {err.strerror or err}"
        ) from None
    # Imported only when there is a file: no config is the common case on the warm `export` path.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        data: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"cannot read config file {_shown(path)}: byte {err.start} is not UTF-8 text (TOML files are UTF-8)"
        ) from None
    except RecursionError:
        raise ConfigError(
            f"cannot read config file {_shown(path)}: it is nested too deeply"
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"cannot read config file {_shown(path)}: {_shown(str(err))}") from None
    check_config(data, path)
    return data


def _shown(path: StrPath) -> str:
    from vertex_env.system.echo import printable  # only on the way to an error

    return printable(os.fspath(path))


#: What the top level of the config file may hold.
TOP_LEVEL_KEYS = ("default_profile", "profiles")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)`, or nothing when no choice is close."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_config(data: Mapping[str, Any], path: StrPath) -> None:
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
    data: Mapping[str, Any], requested: str | None, path: StrPath
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
    project, path = _gcloud_core(environ, "project")
    return (project, f"gcloud config {path}") if project else None


def gcloud_account(environ: Mapping[str, str]) -> str | None:
    """gcloud's configured account (the email `gcloud auth login` set): who an ADC login usually is."""
    return _gcloud_core(environ, "account")[0] or None


def _gcloud_core(environ: Mapping[str, str], name: str) -> tuple[str, str]:
    """(value of [core] `name` in gcloud's active configuration, that file's path); "" when unset."""
    import configparser  # only when no other source named a value

    home = environ.get("HOME") or os.path.expanduser("~")
    config_dir = _clean(environ.get("CLOUDSDK_CONFIG") or os.path.join(home, ".config", "gcloud"))
    active = environ.get("CLOUDSDK_ACTIVE_CONFIG_NAME")
    if not active:
        try:
            with open(os.path.join(config_dir, "active_config"), encoding="utf-8") as fh:
                active = fh.read().strip() or "default"
        except (OSError, UnicodeDecodeError):
            active = "default"
    path = os.path.join(config_dir, "configurations", f"config_{active}")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error:
        return "", path
    return parser.get("core", name, fallback="").strip(), path

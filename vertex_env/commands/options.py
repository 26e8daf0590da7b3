"""The profile options, defined once and shared by every command that resolves a profile (pip-tools style)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from vertex_env.config import OPTIONS, PROFILE_ENV
from vertex_env.environment import Environment, resolve

F = TypeVar("F", bound=Callable[..., Any])
_NAMES = ("profile", "no_cache", *(opt.name for opt in OPTIONS))


def profile_options(func: F) -> F:
    """Add --profile, --project, … --no-cache; the command receives them as one `options` dict."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        options = {name: kwargs.pop(name, None) for name in _NAMES}
        return func(*args, options=options, **kwargs)

    decorated: Any = wrapper
    for opt in reversed(OPTIONS):
        decorated = click.option(
            opt.flag,
            opt.name,
            default=None,
            metavar=_metavar(opt.name),
            help=f"{opt.help} [env: {opt.env}]",
        )(decorated)
    decorated = click.option(
        "--no-cache",
        "no_cache",
        is_flag=True,
        default=None,
        envvar="VERTEX_ENV_NO_CACHE",
        help="Bypass the shared token cache. [env: VERTEX_ENV_NO_CACHE]",
    )(decorated)
    decorated = click.option(
        "--profile",
        "profile",
        default=None,
        metavar="NAME",
        help=f"Profile from the config file. [env: {PROFILE_ENV}]",
    )(decorated)
    return decorated  # type: ignore[no-any-return]


def _metavar(name: str) -> str:
    return {
        "lifetime": "DURATION",
        "min_ttl": "DURATION",
        "timeout": "DURATION",
        "impersonate": "SA_EMAIL",
        "credentials": "FILE|keyring:NAME",
    }.get(name, name.upper())


def environment_from(options: dict[str, Any]) -> Environment:
    """Resolve the Environment the options describe (flags > env > config file > credential > gcloud)."""
    flags = {k: v for k, v in options.items() if k not in ("profile", "no_cache") and v is not None}
    return resolve(options.get("profile"), use_cache=not options.get("no_cache"), **flags)


def port_option(envvar: str) -> Callable[[F], F]:
    """`--port N` for a command that listens (0 picks a free port)."""
    return click.option(
        "--port",
        "port",
        type=click.IntRange(0, 65535),
        default=0,
        envvar=envvar,
        metavar="N",
        help=f"Port to listen on; 0 picks a free one. [env: {envvar}]",
    )


def variable_options(func: F) -> F:
    """--google and --legacy: the optional extra variables, for every command that delivers them."""
    func = click.option(
        "--legacy",
        "legacy",
        is_flag=True,
        envvar="VERTEX_ENV_LEGACY",
        help="Also set OPENAI_API_BASE for older clients. [env: VERTEX_ENV_LEGACY]",
    )(func)
    return click.option(
        "--google",
        "google",
        is_flag=True,
        envvar="VERTEX_ENV_GOOGLE",
        help="Also set GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION. [env: VERTEX_ENV_GOOGLE]",
    )(func)

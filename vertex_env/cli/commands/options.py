"""The click options, built from the one option table (`vertex_env.config.profile.ALL_OPTIONS`), pip-tools style.

No option reads its environment variable through click: every value is read by `vertex_env.config.profile.value()`
(per-command choices) or `vertex_env.environment.resolve()` (the profile and its cache), the same code the
click-free warm path (vertex_env.cli.entry) runs.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click
import click.shell_completion

from vertex_env.config import options as option_table

F = TypeVar("F", bound=Callable[..., Any])


def table_options(*kinds: str) -> Callable[[F], F]:
    """Add the table's options of these kinds. COMMON and FIELD values reach the command unresolved, as one
    `options` dict for `vertex_env.environment.resolve(**options)`; the others arrive resolved, by name."""
    chosen = [opt for opt in option_table.ALL_OPTIONS if opt.kind in kinds]

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if any(opt.kind in (option_table.COMMON, option_table.FIELD) for opt in chosen):
                kwargs["options"] = {
                    **kwargs.get("options", {}),
                    **{
                        opt.name: kwargs.pop(opt.name, None)
                        for opt in chosen
                        if opt.kind in (option_table.COMMON, option_table.FIELD)
                    },
                }
            for opt in chosen:
                if opt.kind not in (option_table.COMMON, option_table.FIELD):
                    kwargs[opt.name] = option_table.value(opt.name, kwargs, os.environ)
            return func(*args, **kwargs)

        decorated: Any = wrapper
        for opt in reversed(chosen):
            decorated = click.option(opt.flag, *opt.aliases, opt.name, **_click_settings(opt))(
                decorated
            )
        return decorated  # type: ignore[no-any-return]

    return decorate


def _click_settings(opt: option_table.Option) -> dict[str, Any]:
    shown = f"default: {opt.default}; " if opt.show_default else ""
    settings: dict[str, Any] = {"default": None, "help": f"{opt.help} [{shown}env: {opt.env}]"}
    if opt.switch:
        settings["is_flag"] = True
    elif opt.repeat:
        settings["multiple"] = True
        settings["metavar"] = opt.metavar
    elif opt.choices:
        settings["type"] = click.Choice(opt.choices)
    else:
        settings["metavar"] = opt.metavar
    if opt.complete == "profile":
        settings["shell_complete"] = _complete_profile
    elif opt.complete == "file":
        settings["shell_complete"] = complete_file
    return settings


def _complete_profile(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    """The profiles of the config file (none when it cannot be read: completion never prints an error)."""
    from vertex_env.config.file import config_path, read_config

    try:
        names = sorted(read_config(config_path()).get("profiles", {}))
    except Exception:
        return []
    return [click.shell_completion.CompletionItem(n) for n in names if n.startswith(incomplete)]


def complete_file(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    """Paths, completed by the shell itself (as click.Path does)."""
    return [click.shell_completion.CompletionItem(incomplete, type="file")]


#: --profile, --no-cache and the profile's fields (--project, --location, …): every command that resolves one.
profile_options = table_options(option_table.COMMON, option_table.FIELD)
#: --google and --legacy: the optional extra variables, for every command that delivers them.
variable_options = table_options(option_table.VARIABLES)
#: `serve`'s own options and `emulator`'s.
serve_options = table_options(option_table.SERVE)
emulator_options = table_options(option_table.EMULATOR)


def command_options(command: str) -> Callable[[F], F]:
    """The options of a warm-path command (`token`, `export`), as the table lists them for it."""
    return table_options(*option_table.COMMAND_KINDS[command])

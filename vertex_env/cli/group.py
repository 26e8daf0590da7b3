"""The click group: it only lists the commands; each lives in `vertex_env.cli.commands.<name>` and loads on use."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Mapping, Sequence

import click

from vertex_env._version import __version__
from vertex_env.errors import NotPosixError, VertexEnvError
from vertex_env.system import diagnostics

log = logging.getLogger(__name__)

# name -> "module:attribute"; imported only when that command runs (start-up time is a feature).
COMMANDS: dict[str, str] = {
    "token": "vertex_env.cli.commands.token:token",
    "export": "vertex_env.cli.commands.export:export",
    "status": "vertex_env.cli.commands.status:status",
    "check": "vertex_env.cli.commands.check:check",
    "write": "vertex_env.cli.commands.write:write",
    "run": "vertex_env.cli.commands.run:run",
    "profile": "vertex_env.cli.commands.profile:profile",
    "cache": "vertex_env.cli.commands.cache:cache",
    "credentials": "vertex_env.cli.commands.credentials:credentials",
    "daemon": "vertex_env.cli.commands.daemon:daemon",
    "hook": "vertex_env.cli.commands.hook:hook",
    "serve": "vertex_env.cli.commands.serve:serve",
    "emulator": "vertex_env.cli.commands.emulator:emulator",
    "demo": "vertex_env.cli.commands.demo:demo",
}

SHORT_HELP: dict[str, str] = {
    "token": "Print a fresh access token.",
    "export": "Print the variables for a shell, a file format or a CI system.",
    "status": "Show the resolved configuration, where each value came from, and the token's life.",
    "check": "Find out what Vertex will refuse, and the command that fixes it.",
    "write": "Set the variables in dotenv files, keeping every other line.",
    "run": "Run a command with the variables set.",
    "profile": "Manage named profiles in the config file.",
    "cache": "Manage the shared token cache.",
    "credentials": "Keep long-lived credentials in the OS keyring.",
    "daemon": "Keep the token cache and dotenv files fresh.",
    "hook": "Print a prompt hook, the direnv library or a service unit.",
    "serve": "Run the authenticated loopback proxy as a service.",
    "emulator": "Run the offline Google + Vertex emulator.",
    "demo": "Show the whole flow offline against the embedded emulator.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._available(name)]

    @staticmethod
    def _available(name: str) -> bool:
        module = COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(module) is not None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or not self._available(cmd_name):
            return None
        module_name, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """A mistyped command gets a suggestion (`vertex-env exprot` → did you mean 'export'?)."""
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            import difflib

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            if close:
                ctx.fail(f"No such command {name!r}. Did you mean {close[0]!r}?")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="vertex-env")
def cli() -> None:
    """Fresh Vertex AI credentials for any OpenAI SDK.

    \b
    Examples:
      eval "$(vertex-env export)"
      vertex-env run -- python app.py
    """


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process and return its exit code (tests call this; the entry point exits with it).

    Whatever ends `export` with a non-zero status (a usage error, a failed mint, an unexpected exception)
    leaves its shell format's failure text on stdout, so that `eval "$(vertex-env export)"` fails too.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    code = 1
    try:
        with diagnostics.installed():
            code = _main(args)
    finally:
        if code != 0 and command_of(args) == "export":
            sys.stdout.write(export_failure_output(args, os.environ))
            sys.stdout.flush()
    return code


def _main(args: list[str]) -> int:
    from vertex_env.system.files import posix_system

    # Windows: one line instead of a traceback at the first lock, whatever the command.
    if not posix_system():
        log.error(NotPosixError.MESSAGE, extra=diagnostics.speaker(None))
        return NotPosixError.exit_code
    try:
        result = cli.main(args=args, prog_name="vertex-env", standalone_mode=False)
    except VertexEnvError as err:
        report(err)
        return err.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        hint = usage_hint(exc, args)
        if hint is None:
            exc.show()
        else:
            log.error("%s", hint, extra=diagnostics.speaker("vertex-env"))
        return exc.exit_code
    except click.exceptions.Abort:
        log.error("Aborted.", extra=diagnostics.speaker(None))
        return 130
    except BrokenPipeError:
        return 141
    return int(result) if isinstance(result, int) else 0


#: Shells whose users ask for `--format bash`: `sh` output is POSIX shell code, which each of them reads.
POSIX_SHELLS = ("bash", "zsh", "dash", "ksh", "ash", "posix")


def usage_hint(exc: click.ClickException, args: Sequence[str]) -> str | None:
    """One line that says what to type instead, for the usage mistakes people make most; None for the rest
    (click's own message)."""
    import shlex

    if isinstance(exc, click.BadParameter) and exc.param is not None and exc.param.name == "format":
        value = option_value(args, "--format")
        if value in POSIX_SHELLS:
            return (
                f"invalid --format {value!r}: use --format sh (POSIX shell code; bash, zsh, dash and ksh "
                "all read it)"
            )
    if isinstance(exc, click.NoSuchOption) and exc.ctx is not None and exc.ctx.command is cli:
        # `vertex-env --project p export`: a command's option given before the command
        command = next((a for a in args if a in COMMANDS), None)
        if command is None:
            return None
        found = cli.get_command(exc.ctx, command)
        accepted = {o for p in (found.params if found else ()) for o in p.opts}
        if exc.option_name.split("=", 1)[0] not in accepted:
            return None
        at = list(args).index(command)
        moved = shlex.join([command, *args[:at], *args[at + 1 :]])
        return f"{exc.option_name} goes after the command: vertex-env {moved}"
    return None


def option_value(args: Sequence[str], flag: str) -> str | None:
    """The value given to `flag` in argv (`--flag V` or `--flag=V`), the last one winning; None if absent."""
    found = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == flag and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith(flag + "="):
            found = arg.partition("=")[2]
    return found


def command_of(args: Sequence[str]) -> str | None:
    """The subcommand named in argv (the group itself takes only --help and --version; a command's option
    given before the command, with its value, is a mistake `usage_hint` names)."""
    return next((a for a in args if a in COMMANDS), None) or next(
        (a for a in args if not a.startswith("-")), None
    )


def export_failure_output(args: Sequence[str], environ: Mapping[str, str]) -> str:
    """The failure text of the format `export` was asked for (`false;` when it cannot be told)."""
    from vertex_env.config import options as option_table
    from vertex_env.sinks import render

    fmt = (
        option_value(args, "--format")
        or environ.get(option_table.ALL_BY_NAME["format"].env)
        or "sh"
    )
    if fmt in render.CI_FORMATS:  # a CI format's stdout may be a report file: leave it empty
        return ""
    return render.failure_output(fmt if fmt in render.FORMATS else "sh")


#: The longest error line: a message quotes values (a path, Google's error_description), and a 100 KB value
#: is not echoed whole.
REPORT_LIMIT = 1000


def report(err: VertexEnvError) -> None:
    """One line on stderr for an expected failure, `vertex-env: error: …`: control characters escaped (no
    terminal escape, no forged second line from a value it quotes), capped at REPORT_LIMIT characters."""
    from vertex_env.system.echo import printable

    log.error("%s", printable(str(err), REPORT_LIMIT), extra=diagnostics.speaker("vertex-env"))


def entry_point() -> None:
    sys.exit(main())

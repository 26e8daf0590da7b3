"""`vertex-env hook SHELL`: print (or install) a prompt hook, the direnv library or a service unit from shell/.

Every snippet names the vertex-env that printed it by absolute path (as `direnv hook` does), so a hook keeps
working when vertex-env lives in a venv that is not on PATH.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import click

from vertex_env._version import __version__
from vertex_env.sinks.render import quote_fish
from vertex_env.system.quoting import quote_sh

log = logging.getLogger(__name__)

FILES = {
    "bash": "vertex-env.bash",
    "zsh": "vertex-env.zsh",
    "fish": "vertex-env.fish",
    "direnv": "direnv/vertex-env.sh",
    "systemd": "systemd/vertex-env.service",
    "launchd": "launchd/io.github.vertex-env.daemon.plist",
}
PROMPT_SHELLS = ("bash", "zsh", "fish")
#: The line of each template that names the command; `hook` replaces it with the absolute path.
COMMAND_LINES = {
    "bash": "__vertex_env_cmd=(vertex-env)",
    "zsh": "__vertex_env_cmd=(vertex-env)",
    "direnv": "__vertex_env_cmd=(vertex-env)",
    "fish": "set -g __vertex_env_cmd vertex-env",
}
#: The line of a prompt hook that an installed file replaces with its upgrade check.
INSTALLED_MARK = "# @installed@"


def command() -> list[str]:
    """The command that runs this vertex-env: the console script it was started as, else one found next to
    this interpreter or on PATH, else `python -m vertex_env`. Symlinks are kept (pipx's ~/.local/bin link
    outlives the venv it points into)."""
    started_as = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    candidates = [started_as] if os.path.basename(started_as) == "vertex-env" else []
    candidates.append(str(Path(sys.executable).parent / "vertex-env"))
    on_path = shutil.which("vertex-env")
    if on_path:
        candidates.append(os.path.abspath(on_path))
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return [candidate]
    return [sys.executable, "-m", "vertex_env"]


def quote_systemd(word: str) -> str:
    """A word of ExecStart: specifiers (%) and variables ($) doubled, quoted when it holds a space."""
    word = word.replace("%", "%%").replace("$", "$$")
    if any(c in word for c in " \t\"'\\"):
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def _check_unit_words(shell: str, cmd: list[str]) -> None:
    """A unit file holds the command on one line (systemd) or in XML strings (launchd): a newline in the
    program's path would start a line of its own (`ExecStartPre=...`), so any control character is refused."""
    from vertex_env.errors import SinkError
    from vertex_env.system.echo import printable

    for word in cmd:
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in word):
            raise SinkError(
                f"cannot write a {shell} unit for {printable(word)}: the path holds a control character",
                hint="install vertex-env under a path without one",
            )


def xml_escape(word: str) -> str:
    return word.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def installed_path(shell: str, environ: Mapping[str, str] | None = None) -> Path:
    """Where `hook SHELL --install` writes: $XDG_DATA_HOME/vertex-env/hook.SHELL."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or str(
        Path(env.get("HOME") or Path.home()) / ".local" / "share"
    )
    return Path(base) / "vertex-env" / f"hook.{shell}"


def hook_text(shell: str, cmd: list[str] | None = None, installed: Path | None = None) -> str:
    """The snippet for `shell` naming `cmd` (default: this vertex-env); with `installed`, the file that
    lives there and regenerates itself when vertex-env is newer than it (after an upgrade)."""
    text = (resources.files("vertex_env") / "shell" / FILES[shell]).read_text(encoding="utf-8")
    cmd = cmd or command()
    if shell in ("systemd", "launchd"):
        _check_unit_words(shell, cmd)
    if shell == "systemd":
        return text.replace("%h/.local/bin/vertex-env", " ".join(quote_systemd(w) for w in cmd))
    if shell == "launchd":
        program = "<string>/Users/YOU/.local/bin/vertex-env</string>"
        indent = text[: text.index(program)].rsplit("\n", 1)[1]
        strings = [f"<string>{xml_escape(w)}</string>" for w in cmd]
        return text.replace(program, ("\n" + indent).join(strings), 1)
    line = COMMAND_LINES[shell]
    if shell == "fish":
        named = f"set -g __vertex_env_cmd {' '.join(quote_fish(w) for w in cmd)}"
    else:
        named = f"__vertex_env_cmd=({' '.join(quote_sh(w) for w in cmd)})"
    text = text.replace(line, named, 1)
    if shell in PROMPT_SHELLS:
        text = text.replace(INSTALLED_MARK, _upgrade_check(shell, cmd, installed), 1)
    return text


def _upgrade_check(shell: str, cmd: list[str], installed: Path | None) -> str:
    """For an installed hook: when the vertex-env program is newer than this file (an upgrade rewrote it),
    write the file again and load that instead — a test of two mtimes, no process, at every other start."""
    if installed is None:
        return f"# vertex-env {__version__}"
    if shell == "fish":
        file, program = quote_fish(str(installed)), quote_fish(cmd[0])
        return (
            f"# vertex-env {__version__}, installed by `vertex-env hook fish --install`\n"
            f"if test {program} -nt {file}; and command {program} {' '.join(quote_fish(w) for w in cmd[1:])} hook fish --install >/dev/null 2>&1\n"
            f"    source {file}\n"
            "    exit\n"
            "end"
        )
    file, program = quote_sh(str(installed)), quote_sh(cmd[0])
    rest = "".join(" " + quote_sh(w) for w in cmd[1:])
    return (
        f"# vertex-env {__version__}, installed by `vertex-env hook {shell} --install`\n"
        f"if [[ {program} -nt {file} ]] && command {program}{rest} hook {shell} --install >/dev/null 2>&1; then\n"
        f"    . {file}\n"
        "    return\n"
        "fi"
    )


def install_hook(shell: str) -> tuple[Path, str]:
    """Write the hook file for `shell` (atomically, 0644: it holds no secret); the rc-file line that loads it."""
    from vertex_env.errors import SinkError
    from vertex_env.system.files import atomic_write

    target = installed_path(shell)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, hook_text(shell, installed=target).encode(), mode=0o644)
    except OSError as err:
        raise SinkError(f"cannot write the hook file {target}: {err.strerror or err}") from None
    if shell == "fish":
        return target, f"test -r {quote_fish(str(target))}; and source {quote_fish(str(target))}"
    return target, f"[ -r {quote_sh(str(target))} ] && . {quote_sh(str(target))}"


@click.command(
    epilog="\b\nExamples:\n"
    "  vertex-env hook bash --install >> ~/.bashrc      # once; no process at shell start-up\n"
    '  eval "$(vertex-env hook bash)"                 # in ~/.bashrc (zsh: ~/.zshrc)\n'
    "  vertex-env hook fish | source                  # in ~/.config/fish/config.fish\n"
    '  mkdir -p "${XDG_CONFIG_HOME:-$HOME/.config}/direnv/lib"\n'
    '  vertex-env hook direnv > "${XDG_CONFIG_HOME:-$HOME/.config}/direnv/lib/vertex-env.sh"\n'
    "  vertex-env hook systemd > ~/.config/systemd/user/vertex-env.service"
)
@click.argument(
    "shell", type=click.Choice(list(FILES)), metavar="{bash|zsh|fish|direnv|systemd|launchd}"
)
@click.option(
    "--install",
    is_flag=True,
    help="bash, zsh, fish: write the hook to $XDG_DATA_HOME/vertex-env/hook.SHELL and print the line "
    "that loads it from your rc file (no process at shell start-up; rewritten after an upgrade).",
)
def hook(shell: str, install: bool) -> None:
    """Print the prompt hook for SHELL (it re-exports only when the token nears expiry), the direnv library
    that defines `use vertex` for .envrc files, or the systemd/launchd unit that runs `vertex-env daemon`."""
    if not install:
        click.echo(hook_text(shell), nl=False)
        return
    if shell not in PROMPT_SHELLS:
        raise click.UsageError(f"--install is for bash, zsh and fish, not {shell}")
    target, line = install_hook(shell)
    log.info(f"wrote {target}; add this line to your rc file:")
    click.echo(line)

"""`vertex-env hook SHELL`: print a prompt hook, the direnv library or a service unit shipped in shell/."""

from __future__ import annotations

from importlib import resources

import click

FILES = {
    "bash": "vertex-env.bash",
    "zsh": "vertex-env.zsh",
    "fish": "vertex-env.fish",
    "direnv": "direnv/vertex-env.sh",
    "systemd": "systemd/vertex-env.service",
    "launchd": "launchd/io.github.vertex-env.daemon.plist",
}


def hook_text(shell: str) -> str:
    """The snippet for `shell`, read from the package (a symlink to shell/ in the source tree)."""
    return (resources.files("vertex_env") / "shell" / FILES[shell]).read_text(encoding="utf-8")


@click.command(
    epilog="\b\nExamples:\n"
    '  eval "$(vertex-env hook bash)"                 # in ~/.bashrc (zsh: ~/.zshrc)\n'
    "  vertex-env hook fish | source                  # in ~/.config/fish/config.fish\n"
    '  vertex-env hook direnv > "${XDG_CONFIG_HOME:-$HOME/.config}/direnv/lib/vertex-env.sh"\n'
    "  vertex-env hook systemd > ~/.config/systemd/user/vertex-env.service"
)
@click.argument(
    "shell", type=click.Choice(list(FILES)), metavar="{bash|zsh|fish|direnv|systemd|launchd}"
)
def hook(shell: str) -> None:
    """Print the prompt hook for SHELL (it re-exports only when the token nears expiry), the direnv library
    that defines `use vertex` for .envrc files, or the systemd/launchd unit that runs `vertex-env daemon`."""
    click.echo(hook_text(shell), nl=False)

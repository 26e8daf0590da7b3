"""`vertex-env hook bash|zsh|fish|direnv`: print a prompt hook or the direnv library shipped in shell/."""

from __future__ import annotations

from importlib import resources

import click

FILES = {
    "bash": "vertex-env.bash",
    "zsh": "vertex-env.zsh",
    "fish": "vertex-env.fish",
    "direnv": "direnv/vertex-env.sh",
}


def hook_text(shell: str) -> str:
    """The snippet for `shell`, read from the package (shell/ in the source tree)."""
    return (resources.files("vertex_env") / "shell" / FILES[shell]).read_text(encoding="utf-8")


@click.command(
    epilog="\b\nExamples:\n"
    '  eval "$(vertex-env hook bash)"                 # in ~/.bashrc (zsh: ~/.zshrc)\n'
    "  vertex-env hook fish | source                  # in ~/.config/fish/config.fish\n"
    '  vertex-env hook direnv > "${XDG_CONFIG_HOME:-$HOME/.config}/direnv/lib/vertex-env.sh"'
)
@click.argument("shell", type=click.Choice(sorted(FILES)))
def hook(shell: str) -> None:
    """Print the prompt hook for SHELL (re-exports only when the token nears expiry), or the direnv library
    that defines `use vertex` for .envrc files."""
    click.echo(hook_text(shell), nl=False)

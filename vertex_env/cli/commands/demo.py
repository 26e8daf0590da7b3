"""`vertex-env demo`: the main job on the embedded emulator, for a newcomer with no Google account."""

from __future__ import annotations

import click


@click.command(epilog="\b\nExample:\n  vertex-env demo")
def demo() -> int:
    """Run the whole flow offline against the embedded emulator and exit 0 when every step worked."""
    from vertex_env.cli.demo import run_demo

    return run_demo(click.echo)

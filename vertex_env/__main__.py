"""`python -m vertex_env` runs the CLI."""

from vertex_env.cli.entry import entry_point

entry_point()

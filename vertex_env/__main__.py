"""`python -m vertex_env` runs the CLI."""

from vertex_env.fast import entry_point

entry_point()

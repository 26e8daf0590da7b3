"""The command line: the click group, the warm entry point (entry.py) and one module per command (commands/)."""

"""`vertex-env check`: find out what Vertex will refuse, and the command that fixes it, before the app does."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from vertex_env.cli.commands.options import complete_file, profile_options, table_options
from vertex_env.config import options as option_table
from vertex_env.errors import UsageError

#: serve's own --key-file row of the option table: the key an app is given is the one serve reads.
_KEY_FILE = option_table.ALL_BY_NAME["key_file"]

#: How each row's state looks in the text report.
_MARKS = {"ok": "ok", "warn": "warn", "fail": "FAIL", "skip": "skip"}
_NAME_WIDTH = len("credential  ")


@click.command(
    epilog="\b\nExamples:\n"
    "  vertex-env check\n"
    "  vertex-env check --profile prod --model google/gemini-2.5-pro --json\n"
    "  vertex-env check --via http://127.0.0.1:8787/v1/projects/P/locations/global/endpoints/openapi"
)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as one JSON document.")
@click.option(
    "--key-file",
    "key_file",
    default=None,
    metavar="FILE",
    shell_complete=complete_file,
    help=f"With --via: the file holding serve's key (the one serve reads). [env: {_KEY_FILE.env}]",
)
@table_options(option_table.CHECK)
@profile_options
def check(
    options: dict[str, Any],
    as_json: bool,
    model: str,
    no_call: bool,
    via: str | None,
    key_file: str | None,
) -> int:
    """Check the credential, the token, the base URL and one real request to Vertex (max_tokens 1).

    A refusal is read from Google's answer (its ErrorInfo reason) and printed with the fix for this principal
    and project. Exit 0 when every row passes, else the code of the first failure (12: Google refused).
    With --via, check a running `serve` as an app would: its /readyz, /models and one request, with the key
    from OPENAI_API_KEY or --key-file.
    """
    from vertex_env.sinks.check import check_environment, check_via

    if via:
        # read as the table reads serve's (flag > VERTEX_ENV_PROXY_KEY_FILE), named by where it came from
        raw, source = option_table.given_value(_KEY_FILE, {"key_file": key_file}, os.environ)
        where = _KEY_FILE.flag if source.startswith("flag") else _KEY_FILE.env
        report = check_via(via, _key(raw, where), model=model, call=not no_call)
    else:
        from vertex_env.environment import resolve

        report = check_environment(resolve(**options), model=model, call=not no_call)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        for row in report.rows:
            click.echo(f"{row.name:<{_NAME_WIDTH}}{_MARKS[row.state]:<6}{row.text}")
            for fix in row.fixes:
                click.echo(f"{'':<{_NAME_WIDTH + 6}}fix: {fix}")
            said = row.details.get("google_message")
            if said:
                click.echo(f"{'':<{_NAME_WIDTH + 6}}Google said: {said}")
    return report.exit_code


def _key(key_file: str | None, where: str = "--key-file") -> str:
    """serve's key, as an app is given it: a key file (named by `where` it was given), else OPENAI_API_KEY."""
    if key_file:
        try:
            with open(os.path.expanduser(key_file), encoding="utf-8") as fh:
                key = fh.read().strip()
        except OSError as err:
            raise UsageError(f"cannot read {where} {key_file}: {err.strerror}") from None
        if not key:
            raise UsageError(f"{where} {key_file} is empty")
        return key
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if not key:
        raise UsageError(
            "--via needs serve's key: set OPENAI_API_KEY or pass --key-file (the file serve reads)"
        )
    return key

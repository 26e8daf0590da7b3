"""`vertex-env serve`: the authenticated loopback proxy as a long-running service (sidecars, editors, many apps).

stdout carries only the product: POSIX `export` statements (or one JSON line) with the base URL and the key;
everything for a person goes to stderr. The key is random per run unless fixed by a file or the environment —
never by an argument, which any user of the machine can read in the process list.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vertex_env.commands.options import environment_from, port_option, profile_options
from vertex_env.errors import SinkError
from vertex_env.loopback import KEY_ENV, check_loopback, fixed_key

if TYPE_CHECKING:
    from vertex_env.proxy import LoopbackProxy

LISTEN_ENV = "VERTEX_ENV_PROXY_LISTEN"
PORT_ENV = "VERTEX_ENV_PROXY_PORT"
WRITE_ENV_ENV = "VERTEX_ENV_PROXY_WRITE_ENV"
KEY_FILE_ENV = "VERTEX_ENV_PROXY_KEY_FILE"

_EXAMPLES = """\b
Examples:
  vertex-env serve --port 8787 --write-env .env &     # then any app reads .env
  vertex-env serve --project my-project --json        # {"base_url": ..., "api_key": ...}
"""


# The examples go in the epilog so that they come last, after the options, as in every command's help.
@click.command(epilog=_EXAMPLES)
@click.option(
    "--listen",
    "--bind",
    "listen_host",
    default="127.0.0.1",
    show_default=True,
    envvar=LISTEN_ENV,
    metavar="ADDRESS",
    help=f"Loopback address to listen on (127.0.0.1, ::1 or localhost; nothing else). [env: {LISTEN_ENV}]",
)
@port_option(PORT_ENV)
@click.option(
    "--write-env",
    "write_env",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar=WRITE_ENV_ENV,
    metavar="PATH",
    help=f"Write OPENAI_BASE_URL and OPENAI_API_KEY to this dotenv file (mode 0600) instead of stdout. [env: {WRITE_ENV_ENV}]",
)
@click.option(
    "--key-file",
    "key_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    envvar=KEY_FILE_ENV,
    metavar="FILE",
    help=f"Read a fixed local key from FILE (default: random per run; or set {KEY_ENV}). [env: {KEY_FILE_ENV}]",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON line (base_url, api_key, host, port) instead of shell code.",
)
@profile_options
def serve(
    options: dict[str, Any],
    listen_host: str,
    port: int,
    write_env: Path | None,
    key_file: Path | None,
    as_json: bool,
) -> int:
    """Run the authenticated loopback proxy until Ctrl-C or SIGTERM.

    Clients use the printed OPENAI_BASE_URL (the Vertex path on 127.0.0.1) and OPENAI_API_KEY (a local key).
    The proxy swaps the key for a fresh Google token on every request, so no client ever sees a token expire.
    """
    check_loopback(listen_host)  # before any credential work: a wrong address is a usage mistake
    key = fixed_key(key_file, os.environ)
    env = environment_from(options)

    import asyncio

    from vertex_env.proxy import LoopbackProxy, describe

    proxy = LoopbackProxy.for_environment(env, key=key, host=listen_host, port=port)
    asyncio.run(_serve(proxy, write_env, as_json))
    click.echo(f"vertex-env serve: stopped {describe(proxy.stats)}", err=True)
    return 0


async def _serve(proxy: LoopbackProxy, write_env: Path | None, as_json: bool) -> None:
    import asyncio
    import contextlib
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        await proxy.start()
        try:
            _announce(proxy, write_env, as_json)
            await stop.wait()
        finally:
            await proxy.close()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _write_env_file(path: Path, variables: dict[str, str]) -> None:
    """Set the two variables in the dotenv file, keeping its other lines; the file ends up 0600.

    An existing file is made private before the key goes in (the rewrite keeps the mode it finds); a new one
    is created 0600. The write itself is atomic (temp file in the same folder, then rename).
    """
    from vertex_env.dotenv_file import write_dotenv

    try:
        os.chmod(os.path.realpath(path), 0o600)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise SinkError(f"cannot make {path} private: {err.strerror or err}") from None
    write_dotenv(path, variables)


def _announce(proxy: LoopbackProxy, write_env: Path | None, as_json: bool) -> None:
    variables = proxy.variables()
    if write_env is not None:
        _write_env_file(write_env, variables)
        click.echo(
            f"vertex-env serve: wrote OPENAI_BASE_URL and OPENAI_API_KEY to {write_env}", err=True
        )
    elif as_json:
        click.echo(
            json.dumps(
                {
                    "base_url": proxy.base_url,
                    "api_key": proxy.key,
                    "host": proxy.host,
                    "port": proxy.port,
                }
            )
        )
    else:
        from vertex_env.render import render

        click.echo(render(variables, "sh"), nl=False)
    sys.stdout.flush()  # a parent reading our stdout must see the variables now, not at exit
    click.echo(
        f"vertex-env serve: proxy for {proxy.upstream} listening on {proxy.base_url}", err=True
    )
    click.echo("vertex-env serve: press Ctrl-C to stop", err=True)

"""`vertex-env serve`: the authenticated proxy as a long-running service (sidecars, editors, many apps, containers).

stdout carries only the product: POSIX `export` statements (or one JSON line) with the base URL and the key;
everything for a person goes to stderr. The key is random per run unless fixed by a file or the environment —
never by an argument, which any user of the machine can read in the process list.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vertex_env.cli.commands.options import profile_options, serve_options
from vertex_env.environment import resolve
from vertex_env.system.hardening import disable_core_dumps
from vertex_env.system.loopback import check_listen, fixed_key
from vertex_env.system.tls import check_tls_pair

if TYPE_CHECKING:
    from vertex_env.proxy.server import LoopbackProxy
    from vertex_env.proxy.serving import Sidecar


_EXAMPLES = """\b
Examples:
  vertex-env serve --port 8787 --write-env .env &     # then any app reads .env
  vertex-env serve --project my-project --json        # {"base_url": ..., "api_key": ...}
  vertex-env serve --port 8787 --key-file /key/key --ops-listen 0.0.0.0:9090 --log-format json
  vertex-env serve --listen 0.0.0.0 --port 8787 --key-file ~/.vertex-key --allow-host host.docker.internal
"""

log = logging.getLogger(__name__)


# The examples go in the epilog so that they come last, after the options, as in every command's help.
@click.command(epilog=_EXAMPLES)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON line (base_url, api_key, host, port, base_urls, tls) instead of shell code.",
)
@serve_options
@profile_options
def serve(
    options: dict[str, Any],
    listen_host: str,
    port: int,
    write_env: Path | None,
    key_file: Path | None,
    as_json: bool,
    log_format: str,
    drain_timeout: float,
    ops_listen: str | None,
    allow_hosts: tuple[str, ...],
    tls_cert: Path | None,
    tls_key: Path | None,
) -> int:
    """Run the authenticated proxy until Ctrl-C or SIGTERM.

    Clients use the printed OPENAI_BASE_URL (the Vertex path on 127.0.0.1) and OPENAI_API_KEY (a local key).
    The proxy swaps the key for a fresh Google token on every request, so no client ever sees a token expire.

    For apps in containers or on other machines: --listen 0.0.0.0 (or an address of this machine) with a
    fixed key (--key-file); they use this machine's address, or a name given with --allow-host, in place of
    127.0.0.1 (any other Host gets 421). Repeated wrong keys from an address close its connections a while.

    Without the key: GET /healthz (the process serves), GET /readyz (a fresh token is held or can be minted;
    503 otherwise and while draining) and GET /metrics (Prometheus text; needs the extra vertex-env[metrics],
    404 without it). SIGTERM drains: no new connections, in-flight requests and streams finish, exit 0.
    """
    from vertex_env.proxy.serving import ObservedTokenSource, parse_ops_listen

    # Before any credential work: a wrong address, a missing key or TLS file is a usage mistake.
    disable_core_dumps()  # a long-lived holder of tokens and the key: no core file with them in it
    tls_pair = check_tls_pair(tls_cert, tls_key)
    ops_address = parse_ops_listen(ops_listen) if ops_listen else None
    key = fixed_key(key_file, os.environ)
    check_listen(listen_host, key is not None)
    tls = None
    if tls_pair is not None:
        from vertex_env.system.tls import server_context

        tls = server_context(*tls_pair)
    env = resolve(**options)

    from vertex_env.proxy.metrics import load as load_metrics
    from vertex_env.proxy.server import LoopbackProxy, describe, run_loop
    from vertex_env.proxy.serving import Sidecar, configure_logging

    configure_logging(log_format)
    tokens = ObservedTokenSource(env.token_source)
    env = env.replace(token_source=tokens.as_token_source())
    proxy = LoopbackProxy.for_environment(
        env, key=key, host=listen_host, port=port, allow_hosts=allow_hosts, tls=tls
    )
    sidecar = Sidecar(
        proxy,
        tokens,
        metrics=load_metrics(tokens.expires_in),
        log_requests=log_format == "json",
        drain_timeout=drain_timeout,
        ops_listen=ops_address,
    ).attach()
    run_loop(sidecar.run(lambda: _announce(sidecar, write_env, as_json, log_format)))
    counters = describe(proxy.stats)
    _note("stopped", f"stopped {counters}", stats=json.loads(counters))
    return 0


def _note(event: str, text: str, **fields: Any) -> None:
    """A line for the operator on stderr: `vertex-env serve: TEXT`, or a JSON log event."""
    log.info(text, extra={"speaker": "vertex-env serve", "event": event, "fields": fields})


def _write_env_file(path: Path, variables: dict[str, str]) -> None:
    """Set the two variables in the dotenv file, keeping its other lines; the file ends up 0600.

    The dotenv writer checks the file first (ours, regular, not reached through another user's link) and only
    then gives it mode 0600: the key is written through a 0600 temp file renamed over it, never into a wider
    file. The write itself is atomic (temp file in the same folder, then rename).
    """
    from vertex_env.sinks.dotenv_file import write_dotenv

    write_dotenv(path, variables)


def _elsewhere(proxy: LoopbackProxy) -> str:
    """What the start-up line adds for clients beyond this machine: where the wildcard listens, and the
    URLs of the names allowed with --allow-host."""
    text = ""
    if proxy.wildcard:
        family = "IPv6" if ":" in proxy.host else "IPv4"
        text = (
            f" (and every {family} interface: other machines and containers use this machine's "
            "address or an --allow-host name in its place"
        )
    others = proxy.base_urls[1:]
    if others:
        text += ("; " if text else " (") + "also " + ", ".join(others)
    return text + ")" if text else ""


def _announce(sidecar: Sidecar, write_env: Path | None, as_json: bool, log_format: str) -> None:
    proxy = sidecar.proxy
    variables = proxy.variables()
    if write_env is not None:
        _write_env_file(write_env, variables)
        _note(
            "wrote_env",
            f"wrote OPENAI_BASE_URL and OPENAI_API_KEY to {write_env}",
            path=str(write_env),
        )
    elif as_json:
        click.echo(
            json.dumps(
                {
                    "base_url": proxy.base_url,
                    "api_key": proxy.key,
                    "host": proxy.host,
                    "port": proxy.port,
                    "base_urls": proxy.base_urls,
                    "tls": proxy.tls is not None,
                }
            )
        )
    else:
        from vertex_env.sinks.render import render

        click.echo(render(variables, "sh"), nl=False)
    sys.stdout.flush()  # a parent reading our stdout must see the variables now, not at exit
    ops = f"; probes and metrics also on port {sidecar.ops_port}" if sidecar.ops_port else ""
    routed = sorted(proxy.models.configured)
    if routed:
        ops += f"; routing {len(routed)} configured model{'s' if len(routed) > 1 else ''} by name"
    _note(
        "listening",
        f"proxy for {proxy.upstream} listening on {proxy.base_url}{_elsewhere(proxy)}{ops}",
        models=routed,
        base_url=proxy.base_url,
        base_urls=proxy.base_urls,
        listen=proxy.host,
        ops_port=sidecar.ops_port,
        metrics=sidecar.metrics is not None,
    )
    if log_format != "json":
        log.info("press Ctrl-C to stop", extra={"speaker": "vertex-env serve"})

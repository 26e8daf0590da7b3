"""`serve` beyond loopback, for apps in containers (issue 19, part 1): a fixed key or no listener, the Host
allow-list against DNS rebinding, wrong keys throttled per client address, optional TLS.

The topology is real: as root, a network namespace joined by a veth pair stands in for a container network
(tests/netns.py). `serve --listen 0.0.0.0` runs on the host side against the emulator (on the host's loopback,
out of the namespace's reach); a client in the namespace — the real openai SDK, or raw sockets where the bytes
matter — reaches it at the veth address, as an app in a container reaches `host.docker.internal`.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import Account, http, run_cli, wait_for
from netns import ContainerNetwork
from prometheus_client.parser import text_string_to_metric_families

from vertex_env.cli.group import main
from vertex_env.config import options as option_table
from vertex_env.emulator import EmulatorServer, write_authorized_user
from vertex_env.errors import ConfigError, UsageError
from vertex_env.proxy.throttle import WrongKeyThrottle, client_address
from vertex_env.system.loopback import check_listen

PROJECT = "test-project"
BASE_PATH = f"/v1/projects/{PROJECT}/locations/us-central1/endpoints/openapi"
CHAT = BASE_PATH + "/chat/completions"
MODEL = "google/gemini-2.5-flash"
BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
ALLOWED = "vertex-env"


# -- helpers ---------------------------------------------------------------------------------------------------


def key_file(folder: Path, key: str) -> Path:
    path = folder / "proxy-key"
    path.write_text(key + "\n")
    path.chmod(0o600)
    return path


def serve_environment(folder: Path, emulator: EmulatorServer) -> dict[str, str]:
    """The environment of a `serve` process of its own: the emulator as Google, an ADC file, nothing of ours."""
    home = folder / "home"
    runtime = home / "run"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "NO_GCE_CHECK": "true",
        "VERTEX_ENV_EMULATOR_HOST": emulator.host_port,
        "GOOGLE_APPLICATION_CREDENTIALS": str(write_authorized_user(folder / "adc.json")),
        "VERTEX_ENV_PROJECT": PROJECT,
    }


class ServeProcess:
    """`vertex-env serve --json --log-format json ARGS`: the announced JSON, the stderr lines as they come."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        command = [sys.executable, "-m", "vertex_env", "serve", "--json", "--log-format", "json"]
        self.process = subprocess.Popen(
            [*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=20)
            self._reader.join(timeout=5)
            raise AssertionError(f"serve did not start: {''.join(self.stderr)}")
        self.announced: dict[str, Any] = json.loads(line)
        self.port = int(self.announced["port"])

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in list(self.stderr):
            data = json.loads(line)
            if data.get("event") == name:
                found.append(data)
        return found

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """/metrics read over loopback (never throttled), by (sample name, labels)."""
        status, _, body = http(f"http://127.0.0.1:{self.port}/metrics")
        assert status == 200, body
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
        }

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self._reader.join(timeout=5)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
        return code


# A client run inside the namespace, one process per call: the openai SDK (chat, stream) or raw sockets.
_OPENAI_CLIENT = r"""
import json, sys
import openai
args = json.loads(sys.argv[1])
out = {}
client = openai.OpenAI(
    base_url=args["base_url"], api_key=args["key"], max_retries=0,
    http_client=openai.DefaultHttpxClient(trust_env=False, timeout=20),
)
messages = [{"role": "user", "content": args["prompt"]}]
try:
    if args["stream"]:
        chunks = list(client.chat.completions.create(model=args["model"], messages=messages, stream=True))
        out["pieces"] = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    else:
        completion = client.chat.completions.create(model=args["model"], messages=messages)
        out["content"] = completion.choices[0].message.content
except openai.APIStatusError as err:
    out["status"] = err.status_code
    out["code"] = (err.body or {}).get("code") if isinstance(err.body, dict) else None
except openai.APIConnectionError as err:
    out["connection_error"] = type(err.__cause__).__name__
print(json.dumps(out))
"""

_RAW_CLIENT = r"""
import json, socket, sys
args = json.load(sys.stdin)  # a request may be larger than one argument may be
results = []
for request in args["requests"]:
    source = (request["source"], 0) if request.get("source") else None
    try:
        with socket.create_connection((args["host"], args["port"]), timeout=15, source_address=source) as sock:
            sock.sendall(request["data"].encode("latin-1"))
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as err:
        results.append({"status": None, "error": type(err).__name__})
        continue
    if not data:
        results.append({"status": None, "error": "closed"})
        continue
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    results.append({"status": int(lines[0].split()[1]), "headers": headers, "body": body.decode("utf-8", "replace")})
print(json.dumps(results))
"""


def raw(
    method: str, target: str, *, host: str, key: str | None, body: str = "", extra: str = ""
) -> str:
    auth = f"Authorization: Bearer {key}\r\n" if key is not None else ""
    return (
        f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{auth}{extra}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
    )


class Bridge:
    """The topology: a container network, the emulator on the host's loopback, and `serve --listen 0.0.0.0
    --key-file K --allow-host vertex-env` on the host."""

    def __init__(
        self, network: ContainerNetwork, emulator: EmulatorServer, serve: ServeProcess, key: str
    ) -> None:
        self.network, self.emulator, self.serve, self.key = network, emulator, serve, key
        self.port = serve.port

    def url(self, host: str | None = None) -> str:
        return f"http://{host or self.network.host_address}:{self.port}{BASE_PATH}"

    def client_env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"}

    def openai_in_container(
        self, *, key: str, prompt: str = "hi", stream: bool = False, host: str | None = None
    ) -> dict[str, Any]:
        args = {
            "base_url": self.url(host),
            "key": key,
            "prompt": prompt,
            "stream": stream,
            "model": MODEL,
        }
        done = self.network.run(
            [sys.executable, "-c", _OPENAI_CLIENT, json.dumps(args)], env=self.client_env()
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def raw_in_container(
        self, requests: list[dict[str, Any]], *, host: str | None = None, port: int | None = None
    ) -> list[dict[str, Any]]:
        args = {
            "host": host or self.network.host_address,
            "port": port or self.port,
            "requests": requests,
        }
        done = self.network.run(
            [sys.executable, "-c", _RAW_CLIENT], env=self.client_env(), stdin=json.dumps(args)
        )
        assert done.returncode == 0, done.stderr
        results: list[dict[str, Any]] = json.loads(done.stdout)
        return results


@pytest.fixture(scope="module")
def bridge(
    module_container_network: ContainerNetwork, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bridge]:
    folder = tmp_path_factory.mktemp("bridge")
    key = secrets.token_urlsafe(32)
    emulator = EmulatorServer().start()
    try:
        serve = ServeProcess(
            serve_environment(folder, emulator),
            "--listen",
            "0.0.0.0",
            "--key-file",
            str(key_file(folder, key)),
            "--allow-host",
            ALLOWED,
        )
        try:
            yield Bridge(module_container_network, emulator, serve, key)
        finally:
            assert serve.stop() == 0
            assert key not in "".join(serve.stderr)
    finally:
        emulator.stop()


# -- listening beyond loopback needs a fixed key ------------------------------------------------------------------


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "[::]", "192.0.2.10", "fe80::1"])
def test_listening_beyond_loopback_without_a_fixed_key_exits_2_naming_key_file(
    emu: EmulatorServer, capsys: pytest.CaptureFixture[str], address: str
) -> None:
    assert main(["serve", "--listen", address]) == UsageError.exit_code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "--key-file" in lines[0] and "without a fixed key" in lines[0]
    assert emu.admin.stats()["tokens_issued"] == 0  # refused before any credential work


def test_the_variable_form_of_listen_is_held_to_the_same_rule(emu: EmulatorServer) -> None:
    env = {**os.environ, "VERTEX_ENV_PROXY_LISTEN": "0.0.0.0"}
    result = run_cli("serve", env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "--key-file" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_key_too_short_for_a_listener_beyond_loopback_is_refused(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VERTEX_ENV_PROXY_KEY", "short-key")
    assert main(["serve", "--listen", "0.0.0.0"]) == ConfigError.exit_code
    err = capsys.readouterr().err
    assert "at least 32" in err and "short-key" not in err
    assert emu.admin.stats()["tokens_issued"] == 0


@pytest.mark.parametrize("address", ["example.com", "localhost.evil.example", "10.0.0.300", "*"])
def test_a_listen_value_that_is_no_address_is_a_usage_error(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UsageError, match="expected an IP address"):
        check_listen(address, keyed=True)


@pytest.mark.parametrize(
    ("address", "bound"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("localhost", "127.0.0.1"),
        ("[::1]", "::1"),
        ("0.0.0.0", "0.0.0.0"),
        ("[::]", "::"),
        ("10.1.2.3", "10.1.2.3"),
    ],
)
def test_the_address_to_bind(address: str, bound: str) -> None:
    assert check_listen(address, keyed=True) == bound


def test_loopback_needs_no_fixed_key() -> None:
    assert check_listen("127.0.0.1", keyed=False) == "127.0.0.1"


# -- the Host allow-list option ----------------------------------------------------------------------------------


def test_allow_host_is_repeatable_and_its_variable_comma_separated() -> None:
    given = {"allow_hosts": ("vertex-env", "Host.Docker.Internal,[fd00::1]")}
    assert option_table.value("allow_hosts", given, {}) == (
        "vertex-env",
        "host.docker.internal",
        "fd00::1",
    )
    environ = {"VERTEX_ENV_PROXY_ALLOW_HOSTS": "a.example, b_c ,a.example"}
    assert option_table.value("allow_hosts", {"allow_hosts": ()}, environ) == ("a.example", "b_c")
    # the flag wins over the variable
    assert option_table.value("allow_hosts", {"allow_hosts": ("x",)}, environ) == ("x",)
    assert option_table.value("allow_hosts", {"allow_hosts": ()}, {}) == ()


@pytest.mark.parametrize(
    "name", ["*", "*.example", "vertex-env:8787", "http://vertex-env", "a b", "", "é.example"]
)
def test_a_bad_allowed_host_is_a_usage_error_naming_the_flag(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--allow-host", name]) == 2
    err = capsys.readouterr().err
    assert "--allow-host" in err and len(err.strip().splitlines()) == 1


# -- the throttle (a fake clock) ---------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, **limits: Any) -> WrongKeyThrottle:
    from vertex_env.proxy.guard import RateLimitedLog

    return WrongKeyThrottle(RateLimitedLog(), clock=clock, **limits)


def test_repeated_wrong_keys_block_an_address_for_a_while_and_longer_each_time() -> None:
    clock = Clock()
    t = throttle(clock, failures=3, window=60, first_block=30, max_block=100)
    assert [t.failed("10.0.0.2", "wrong_key") for _ in range(2)] == [0, 0]
    assert t.blocked("10.0.0.2") == 0
    assert t.failed("10.0.0.2", "wrong_key") == 30  # the third within the window
    assert t.blocked("10.0.0.2") == 30 and t.blocked("10.0.0.3") == 0
    clock.now += 29
    assert t.blocked("10.0.0.2") == 1
    clock.now += 2
    assert t.blocked("10.0.0.2") == 0
    for _ in range(2):
        t.failed("10.0.0.2", "no_key")
    assert t.failed("10.0.0.2", "no_key") == 60  # twice as long
    clock.now += 61
    for _ in range(2):
        t.failed("10.0.0.2", "wrong_key")
    assert t.failed("10.0.0.2", "wrong_key") == 100  # capped
    assert t.blocks == 3


def test_failures_spread_beyond_the_window_never_block() -> None:
    clock = Clock()
    t = throttle(clock, failures=3, window=60)
    for _ in range(10):
        assert t.failed("10.0.0.2", "wrong_key") == 0
        clock.now += 31  # two in any window
    assert t.blocked("10.0.0.2") == 0


def test_loopback_clients_are_never_blocked() -> None:
    """Every account of the machine shares 127.0.0.1: a block would let one lock out another's app."""
    clock = Clock()
    t = throttle(clock, failures=2)
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        for _ in range(10):
            assert t.failed(address, "wrong_key") == 0
        assert t.blocked(address) == 0
    assert len(t) == 0


def test_a_dual_stack_client_is_counted_under_its_ipv4_address() -> None:
    assert client_address("::ffff:10.0.0.2") == "10.0.0.2"
    assert client_address("fd00::2") == "fd00::2"
    clock = Clock()
    t = throttle(clock, failures=2)
    t.failed("10.0.0.2", "wrong_key")
    assert t.failed("::ffff:10.0.0.2", "wrong_key") > 0
    assert t.blocked("10.0.0.2") > 0


def test_the_table_of_addresses_is_bounded() -> None:
    clock = Clock()
    t = throttle(clock, failures=2, max_addresses=100)
    for n in range(10_000):
        t.failed(str(ipaddress.IPv4Address(0x0A000000 + n)), "wrong_key")
    assert len(t) == 100


def test_the_throttle_logs_the_address_never_a_key_and_few_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    t = throttle(clock, failures=5)
    with caplog.at_level("WARNING", logger="vertex_env.proxy.server"):
        for n in range(200):
            t.failed(f"10.0.{n % 4}.2", "wrong_key")
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("vertex_env")]
    assert any("10.0.0.2" in m and "wrong key" in m for m in messages)
    assert any("closed for 30s" in m for m in messages)
    assert len(messages) <= 3  # one line per kind per interval, however many failures


# -- the topology: a client in a container network --------------------------------------------------------------


@pytest.mark.slow
def test_a_container_chats_and_streams_with_the_key_and_lands_on_vertex(bridge: Bridge) -> None:
    before = len(bridge.emulator.admin.requests(kind="chat")["chat"])
    answer = bridge.openai_in_container(key=bridge.key, prompt="Say hello")
    assert answer == {"content": "Emulated reply to: Say hello"}
    bridge.emulator.admin.reply("one two three four five six")
    streamed = bridge.openai_in_container(key=bridge.key, stream=True)
    assert (
        len(streamed["pieces"]) > 3 and "".join(streamed["pieces"]) == "one two three four five six"
    )
    recorded = bridge.emulator.admin.requests(kind="chat")["chat"][before:]
    assert [r["path"] for r in recorded] == [CHAT, CHAT]
    assert all(r["token_id"] is not None for r in recorded)  # a Google token reached "Vertex"


@pytest.mark.slow
def test_a_container_cannot_reach_the_hosts_loopback(bridge: Bridge) -> None:
    """The namespace is a network of its own: the emulator on the host's 127.0.0.1 is out of its reach, so
    whatever reaches Vertex went through serve."""
    port = int(bridge.emulator.host_port.rsplit(":", 1)[1])
    [result] = bridge.raw_in_container(
        [{"data": raw("GET", "/", host="127.0.0.1", key=None)}], host="127.0.0.1", port=port
    )
    assert result["status"] is None and result["error"] == "ConnectionRefusedError"


@pytest.mark.slow
def test_a_container_without_the_key_or_with_a_wrong_one_gets_401(bridge: Bridge) -> None:
    chats = bridge.emulator.admin.stats()["requests"]["chat"]
    # the SDK refuses to send no key at all: that request is sent as bytes
    [no_key] = bridge.raw_in_container(
        [{"data": raw("POST", CHAT, host=ALLOWED, key=None, body=BODY)}]
    )
    assert no_key["status"] == 401 and no_key["headers"]["www-authenticate"].startswith("Bearer")
    assert json.loads(no_key["body"])["error"]["code"] == "invalid_api_key"
    wrong = secrets.token_urlsafe(32)
    assert bridge.openai_in_container(key=wrong) == {"status": 401, "code": "invalid_api_key"}
    assert bridge.emulator.admin.stats()["requests"]["chat"] == chats  # nothing reached "Vertex"
    assert wrong not in "".join(bridge.serve.stderr)


@pytest.mark.slow
def test_the_host_rule_answers_421_to_a_foreign_host_and_200_to_an_allowed_one(
    bridge: Bridge,
) -> None:
    """DNS rebinding stays stopped: loopback, the address the connection arrived on (the veth address, not
    0.0.0.0) and --allow-host names pass; any other Host is 421, key or not."""
    net = bridge.network
    port = bridge.port
    hosts = {
        ALLOWED: 200,
        f"{ALLOWED}:{port}": 200,
        "VERTEX-ENV": 200,
        f"{net.host_address}:{port}": 200,  # the interface the connection arrived on
        f"127.0.0.1:{port}": 200,
        "rebound.example": 421,
        f"rebound.example:{port}": 421,
        "0.0.0.0": 421,  # the wildcard is no address of ours
        f"{net.address}:{port}": 421,  # the client's own address
        "vertex-env.evil.example": 421,
    }
    requests = [{"data": raw("POST", CHAT, host=host, key=bridge.key, body=BODY)} for host in hosts]
    results = bridge.raw_in_container(requests)
    assert {host: r["status"] for host, r in zip(hosts, results, strict=True)} == hosts
    refused = [json.loads(r["body"]) for r in results if r["status"] == 421]
    assert all(body["error"]["code"] == "misdirected_request" for body in refused)
    # the probes obey the same rule on this port
    probes = bridge.raw_in_container(
        [
            {"data": raw("GET", "/metrics", host="rebound.example", key=None)},
            {"data": raw("GET", "/healthz", host=ALLOWED, key=None)},
        ]
    )
    assert [r["status"] for r in probes] == [421, 200]


@pytest.mark.slow
def test_repeated_wrong_keys_from_one_address_are_cut_off_logged_and_counted(
    bridge: Bridge,
) -> None:
    """Another container (its own address) sends wrong keys: after 10 it gets 429 with Retry-After, then its
    new connections are closed unread; the container with the key, on another address, is served all along."""
    net = bridge.network
    before = bridge.serve.metrics()
    wrong = secrets.token_urlsafe(32)
    attempts = [
        {"data": raw("POST", CHAT, host=ALLOWED, key=wrong, body=BODY), "source": net.other_address}
        for _ in range(12)
    ]
    results = bridge.raw_in_container(attempts)
    statuses = [r["status"] for r in results]
    assert statuses[:9] == [401] * 9
    assert statuses[9] == 429  # the tenth within the window
    assert int(results[9]["headers"]["retry-after"]) == 30
    assert results[9]["headers"]["connection"] == "close"
    assert statuses[10:] == [None, None]  # closed as soon as accepted, before a byte was read
    # the right key from the blocked address: its new connection is cut too (a block is per address) ...
    [cut] = bridge.raw_in_container(
        [
            {
                "data": raw("POST", CHAT, host=ALLOWED, key=bridge.key, body=BODY),
                "source": net.other_address,
            }
        ]
    )
    assert cut["status"] is None
    # ... while the client with the key on its own address is served
    assert bridge.openai_in_container(key=bridge.key, prompt="still") == {
        "content": "Emulated reply to: still"
    }

    after = bridge.serve.metrics()

    def grew(name: str, **labels: str) -> float:
        sample = (name, tuple(sorted(labels.items())))
        return after.get(sample, 0) - before.get(sample, 0)

    assert grew("vertex_env_proxy_refused_total", reason="wrong_key") == 9
    assert grew("vertex_env_proxy_refused_total", reason="throttled") == 1
    assert grew("vertex_env_proxy_blocked_connections_total") == 3
    wait_for(lambda: bridge.serve.events("client_blocked"), 5, "the client_blocked line")
    [blocked] = bridge.serve.events("client_blocked")
    assert blocked["client"] == net.other_address and blocked["seconds"] == 30
    failed = bridge.serve.events("auth_failed")
    assert failed and {e["client"] for e in failed} <= {net.other_address, net.address}
    refused_lines = [e for e in bridge.serve.events("request") if "refused" in e]
    assert any(e.get("client") == net.other_address for e in refused_lines)
    assert wrong not in "".join(bridge.serve.stderr)
    assert bridge.key not in "".join(bridge.serve.stderr)


@pytest.mark.slow
def test_the_start_up_says_which_urls_clients_use(bridge: Bridge) -> None:
    announced = bridge.serve.announced
    port = bridge.port
    assert announced["host"] == "0.0.0.0"
    assert (
        announced["base_url"] == f"http://127.0.0.1:{port}{BASE_PATH}"
    )  # for apps on this machine
    assert announced["base_urls"] == [
        f"http://127.0.0.1:{port}{BASE_PATH}",
        f"http://{ALLOWED}:{port}{BASE_PATH}",
    ]
    assert announced["tls"] is False
    assert announced["api_key"] == bridge.key
    [listening] = bridge.serve.events("listening")
    assert listening["listen"] == "0.0.0.0"
    assert listening["base_urls"] == announced["base_urls"]
    assert "every IPv4 interface" in listening["message"]
    assert f"http://{ALLOWED}:{port}{BASE_PATH}" in listening["message"]


# -- a hostile second account on the host ----------------------------------------------------------------------


@pytest.mark.slow
def test_another_account_on_the_host_gets_nothing_from_the_open_listener(
    bridge: Bridge, accounts: tuple[Account, Account]
) -> None:
    """The attacker, a local account, reaches the 0.0.0.0 listener at the veth address: no key and wrong
    keys get 401 then a block, a huge header block is refused, and serve keeps serving the container. The key
    is in neither serve's argv nor its log."""
    attacker = accounts[1]
    net = bridge.network
    requests = [
        {"data": raw("POST", CHAT, host=ALLOWED, key=None, body=BODY)},
        {"data": raw("POST", CHAT, host=ALLOWED, key="x" * 40, body=BODY)},
        {"data": raw("POST", CHAT, host=ALLOWED, key=bridge.key[:-1] + "?", body=BODY)},
        {
            "data": raw(
                "POST",
                CHAT,
                host=ALLOWED,
                key="y" * 40,
                body=BODY,
                extra=f"X-Big: {'a' * 200_000}\r\n",
            )
        },
    ] + [{"data": raw("POST", CHAT, host=ALLOWED, key="z" * 40, body=BODY)} for _ in range(12)]
    args = {"host": net.host_address, "port": bridge.port, "requests": requests}
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if python is None:
        pytest.skip("no system python3 another account can run")
    done = subprocess.run(
        attacker.argv(python, "-c", _RAW_CLIENT),
        input=json.dumps(args),
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    statuses = [r["status"] for r in json.loads(done.stdout)]
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3] in (400, 431, None)  # aiohttp refuses a header line over its limit
    assert 429 in statuses and statuses[-1] is None  # blocked: cut before a byte is read
    assert 200 not in statuses
    cmdline = Path(f"/proc/{bridge.serve.process.pid}/cmdline").read_bytes()
    assert bridge.key.encode() not in cmdline
    assert bridge.key not in "".join(bridge.serve.stderr)
    # the container with the key is still served
    assert bridge.openai_in_container(key=bridge.key, prompt="after") == {
        "content": "Emulated reply to: after"
    }


# -- TLS -----------------------------------------------------------------------------------------------------------


def self_signed(
    folder: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> tuple[Path, Path, Path]:
    """A certificate authority made for the test, and a server certificate it signed for `names` with the
    server's unencrypted key (0600): (ca.pem, cert.pem, key.pem), made with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def builder(subject: x509.Name, issuer: x509.Name, public: Any) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vertex-env test CA")])
    ca_usage = x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    ca = (
        builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ca_usage, critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    cert = (
        builder(server_name, ca_name, key.public_key())
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(aki, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


@pytest.mark.parametrize("given", ["--tls-cert", "--tls-key"])
def test_tls_needs_both_files(
    emu: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], given: str
) -> None:
    _, cert, key = self_signed(tmp_path)
    assert main(["serve", given, str(cert if given == "--tls-cert" else key)]) == 2
    err = capsys.readouterr().err
    missing = "--tls-key" if given == "--tls-cert" else "--tls-cert"
    assert f"{given} needs {missing}" in err and len(err.strip().splitlines()) == 1
    assert emu.admin.stats()["tokens_issued"] == 0


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604])
def test_a_tls_key_others_can_read_is_refused_like_the_proxy_key(
    emu: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    _, cert, key = self_signed(tmp_path)
    key.chmod(mode)
    assert main(["serve", "--tls-cert", str(cert), "--tls-key", str(key)]) == 3
    err = capsys.readouterr().err
    assert f"TLS key file {key} is accessible by others" in err
    assert f"chmod 600 '{key}'" in err and len(err.strip().splitlines()) == 1
    assert "PRIVATE KEY" not in err
    assert emu.admin.stats()["tokens_issued"] == 0


def test_an_encrypted_or_mismatched_tls_key_is_one_line(
    emu: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives import serialization

    _, cert, key = self_signed(tmp_path)
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    assert main(["serve", "--tls-cert", str(cert), "--tls-key", str(key)]) == 3
    err = capsys.readouterr().err
    assert "is encrypted" in err and len(err.strip().splitlines()) == 1
    other = tmp_path / "other"
    other.mkdir()
    _, _, other_key = self_signed(other)
    assert main(["serve", "--tls-cert", str(cert), "--tls-key", str(other_key)]) == 3
    err = capsys.readouterr().err
    assert "cannot use TLS certificate" in err and len(err.strip().splitlines()) == 1
    assert emu.admin.stats()["tokens_issued"] == 0


@pytest.mark.slow
def test_serve_over_tls_with_a_self_signed_certificate(emu: EmulatorServer, tmp_path: Path) -> None:
    """https end to end: the printed base URL says https, the openai SDK trusting the certificate chats and
    streams; a client that does not trust it, and plain http on the same port, get nothing."""
    ca, cert, tls_key = self_signed(tmp_path)
    key = secrets.token_urlsafe(32)
    serve = ServeProcess(
        serve_environment(tmp_path, emu),
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(tls_key),
        "--key-file",
        str(key_file(tmp_path, key)),
    )
    try:
        base_url = serve.announced["base_url"]
        assert base_url == f"https://127.0.0.1:{serve.port}{BASE_PATH}"
        assert serve.announced["tls"] is True
        trusting = openai.DefaultHttpxClient(
            trust_env=False, verify=ssl.create_default_context(cafile=str(ca))
        )
        with openai.OpenAI(
            base_url=base_url, api_key=key, max_retries=0, http_client=trusting
        ) as client:
            completion = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "over tls"}]
            )
            emu.admin.reply("a b c d e")
            chunks = list(
                client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True
                )
            )
        assert completion.choices[0].message.content == "Emulated reply to: over tls"
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a b c d e"
        with (
            openai.OpenAI(
                base_url=base_url,
                api_key=key,
                max_retries=0,
                http_client=openai.DefaultHttpxClient(trust_env=False),
            ) as untrusting,
            pytest.raises(openai.APIConnectionError),
        ):
            untrusting.models.list()
        with socket.create_connection(("127.0.0.1", serve.port), timeout=10) as plain:
            plain.sendall(raw("GET", "/healthz", host="127.0.0.1", key=None).encode())
            try:
                answer = plain.recv(65536)
            except ConnectionResetError:
                answer = b""
        assert not answer.startswith(b"HTTP/")  # no plain http beside https
    finally:
        assert serve.stop() == 0
    assert key not in "".join(serve.stderr)

"""The one proxy-bypass rule: loopback traffic (the emulator, `serve`, `run --proxy`) never goes through an
HTTP(S)_PROXY, while a far host (Google) still does. With every proxy variable pointing at a closed port, as on
a corporate laptop whose proxy is down or unreachable from here, the demo and every command against the
emulator work."""

from __future__ import annotations

import http.server as http_server
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest
from conftest import http, run_cli

from vertex_env.core.transport import make_request
from vertex_env.emulator import EmulatorServer
from vertex_env.emulator.state import TOKEN_PREFIX
from vertex_env.sinks.exec_child import child_environment
from vertex_env.system.loopback import PROXY_VARIABLES, goes_direct

#: A child that chats through OPENAI_BASE_URL with the stdlib's default opener (which honours HTTP_PROXY and
#: NO_PROXY, as most HTTP clients do) and prints the reply.
CHAT_CHILD = """
import json, os, urllib.request
request = urllib.request.Request(
    os.environ["OPENAI_BASE_URL"] + "/chat/completions",
    data=b'{"model": "google/gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}',
    headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "Content-Type": "application/json"},
)
print(json.load(urllib.request.urlopen(request, timeout=10))["choices"][0]["message"]["content"])
"""


@pytest.fixture
def dead_proxy(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every proxy variable (both cases, ALL_PROXY too) at a loopback port nothing listens on; no NO_PROXY."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, url)
    return url


@pytest.mark.parametrize(
    ("url", "direct"),
    [
        ("http://127.0.0.1:8080/v1", True),
        ("http://127.3.4.5/", True),
        ("http://localhost:1/x", True),
        ("http://LOCALHOST/", True),
        ("http://[::1]:9/", True),
        ("https://oauth2.googleapis.com/token", False),
        ("https://aiplatform.googleapis.com/v1/x", False),
        ("http://169.254.169.254/computeMetadata/v1", False),
        ("http://10.0.0.1/", False),
        ("http://[::1/", False),  # malformed: not ours to route
    ],
)
def test_only_loopback_goes_direct(url: str, direct: bool) -> None:
    assert goes_direct(url) is direct


@pytest.mark.slow
def test_the_demo_runs_with_a_dead_proxy(dead_proxy: str) -> None:
    result = run_cli("demo", timeout=90)
    assert result.returncode == 0, result.stderr
    assert "HTTP 200" in result.stdout
    assert "could not reach" not in result.stderr


@pytest.mark.slow  # a vertex-env process per case
@pytest.mark.parametrize(
    ("args", "shows"),
    [
        (("token",), TOKEN_PREFIX),
        (("export",), "export OPENAI_API_KEY="),
        (("status",), "emulator"),
    ],
)
def test_commands_reach_the_emulator_past_a_dead_proxy(
    emu: EmulatorServer, dead_proxy: str, args: tuple[str, ...], shows: str
) -> None:
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert shows in result.stdout
    assert (
        emu.admin.stats()["tokens_issued"] == 1
    )  # a real mint, through the admin client past the proxy too


@pytest.mark.slow  # a vertex-env process per case
@pytest.mark.parametrize("mode", [(), ("--proxy",)], ids=["exec", "proxy"])
def test_run_and_its_child_reach_loopback_past_a_dead_proxy(
    emu: EmulatorServer, dead_proxy: str, mode: tuple[str, ...]
) -> None:
    result = run_cli("run", *mode, "--", sys.executable, "-c", CHAT_CHILD)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Emulated reply to: hi"
    assert emu.admin.stats()["requests"]["chat"] == 1


@pytest.mark.slow  # a vertex-env process per case
def test_serve_reaches_the_emulator_past_a_dead_proxy(emu: EmulatorServer, dead_proxy: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "vertex_env", "serve", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        body = json.dumps(
            {"model": "google/gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}
        )
        status, _, answer = http(
            started["base_url"] + "/chat/completions",
            method="POST",
            body=body.encode(),
            headers={"Authorization": f"Bearer {started['api_key']}"},
        )
    finally:
        process.terminate()
        _, err = process.communicate(timeout=20)
    assert status == 200, (answer, err)
    assert json.loads(answer)["choices"][0]["message"]["content"] == "Emulated reply to: hi"


def test_a_child_gets_loopback_added_to_no_proxy_only_when_it_needs_it() -> None:
    parent = {"HTTPS_PROXY": "http://corp:3128", "no_proxy": "intra.example"}
    env = child_environment(parent, {"OPENAI_BASE_URL": "http://127.0.0.1:5/v1"})
    assert env["no_proxy"] == "intra.example,127.0.0.1,localhost,::1"
    assert env["NO_PROXY"] == "127.0.0.1,localhost,::1"
    far = child_environment(parent, {"OPENAI_BASE_URL": "https://aiplatform.googleapis.com/v1"})
    assert "NO_PROXY" not in far and far["no_proxy"] == "intra.example"
    unproxied = child_environment({}, {"OPENAI_BASE_URL": "http://127.0.0.1:5/v1"})
    assert "NO_PROXY" not in unproxied and "no_proxy" not in unproxied


class _RecordingProxy(http_server.BaseHTTPRequestHandler):
    """A forward proxy that answers every request itself and records its absolute-form target."""

    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.seen.append(self.path)
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        payload = b'{"access_token": "ya29.via-proxy", "expires_in": 3600}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def corporate_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    seen: list[str] = []
    handler = type("Recording", (_RecordingProxy,), {"seen": seen})
    server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_google_host_still_goes_through_the_environment_proxy(
    corporate_proxy: list[str],
) -> None:
    """Without the emulator, google-auth's requests go to Google through HTTP(S)_PROXY (here over http, so
    that the recording proxy can read them)."""
    response = make_request(environ={})(
        "http://oauth2.googleapis.com/token", method="POST", body=b"grant_type=x"
    )
    assert response.status == 200
    assert corporate_proxy == ["http://oauth2.googleapis.com/token"]

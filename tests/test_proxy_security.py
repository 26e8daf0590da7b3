"""The proxy's hardening, one refusal per test: loopback only, the local key, origin-form requests under the
Vertex base only, hop-by-hop headers stripped both ways, bounded bodies and idle connections, nothing secret
in logs or upstream. The emulator plays Google; its records show what reached "Google".
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vertex_env.cli.group import main
from vertex_env.emulator import TOKEN_PREFIX, EmulatorServer
from vertex_env.environment import resolve
from vertex_env.errors import ConfigError, UsageError
from vertex_env.proxy.server import (
    KEEPALIVE_TIMEOUT,
    MAX_BODY,
    BackgroundProxy,
    LoopbackProxy,
    check_loopback,
    new_key,
)

PROJECT = "test-project"
BASE_PATH = f"/v1/projects/{PROJECT}/locations/us-central1/endpoints/openapi"
CHAT = BASE_PATH + "/chat/completions"
BODY = b'{"model":"google/gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}'


@pytest.fixture
def proxy(emu: EmulatorServer) -> Iterator[BackgroundProxy]:
    with BackgroundProxy.for_environment(resolve()) as running:
        yield running


def raw_request(
    port: int, data: bytes, *, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    """Send exact bytes (the request must say `Connection: close`); status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def request_bytes(
    target: str,
    key: str | None,
    *,
    method: str = "POST",
    body: bytes = BODY,
    host: str = "127.0.0.1",
    extra: str = "",
) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key is not None else ""
    return (
        f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{auth}{extra}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1") + body


def chat_requests_seen(emu: EmulatorServer) -> int:
    return int(emu.admin.stats()["requests"]["chat"])


# -- loopback only ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "", "localhost.evil.example"],
)
def test_refuses_to_listen_anywhere_but_loopback(host: str) -> None:
    with pytest.raises(ConfigError):
        check_loopback(host)


@pytest.mark.parametrize(
    ("host", "bound"),
    [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("[::1]", "::1"), ("localhost", "127.0.0.1")],
)
def test_accepts_loopback_addresses(host: str, bound: str) -> None:
    assert check_loopback(host) == bound


def test_serve_listen_on_all_interfaces_without_a_fixed_key_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 19: beyond loopback only with a fixed key (tests/test_bridge_listen.py has the rest)."""
    assert main(["serve", "--listen", "0.0.0.0"]) == UsageError.exit_code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "refusing to listen on 0.0.0.0 without a fixed key: give --key-file" in captured.err


# -- the key file: refused when others could read or write it, as ssh refuses a private key -------------


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
def test_serve_refuses_a_key_file_others_can_access(
    emu: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    key_file = tmp_path / "proxy key"
    key_file.write_text("k" * 48 + "\n")
    key_file.chmod(mode)
    assert main(["serve", "--key-file", str(key_file)]) == ConfigError.exit_code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "k" * 48 not in captured.err
    assert f"run: chmod 600 '{key_file}'" in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert emu.admin.stats()["tokens_issued"] == 0  # refused before any credential work


def test_serve_refuses_a_key_file_owned_by_another_user(
    emu: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() != 0:  # pragma: no cover - CI runs as root
        pytest.skip("needs root to give a file to another user")
    key_file = tmp_path / "key"
    key_file.write_text("k" * 48 + "\n")
    key_file.chmod(0o600)
    os.chown(key_file, 65534, 65534)
    assert main(["serve", "--key-file", str(key_file)]) == ConfigError.exit_code
    err = capsys.readouterr().err
    assert "belongs to another user" in err and "k" * 48 not in err


def test_serve_judges_the_file_a_key_symlink_points_to_and_refuses_a_fifo(
    emu: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = tmp_path / "real"
    real.write_text("k" * 48)
    real.chmod(0o644)
    link = tmp_path / "link"
    link.symlink_to(real)  # a private-looking link to a readable file is still a readable key
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    assert main(["serve", "--key-file", str(link)]) == ConfigError.exit_code
    assert main(["serve", "--key-file", str(fifo)]) == ConfigError.exit_code  # and does not hang
    err = capsys.readouterr().err
    assert "accessible by others (mode 0644)" in err and "not a regular file" in err


@pytest.mark.parametrize("command", [["serve"], ["emulator"], ["serve", "--ops-listen"]])
def test_a_busy_port_is_one_line_that_suggests_port_0(
    emu: EmulatorServer, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if command[-1] == "--ops-listen":
            args = [*command, f"127.0.0.1:{port}"]
            hint = "--ops-listen 127.0.0.1:0 for any free one"
        else:
            args = [*command, "--port", str(port)]
            hint = "--port 0 for any free one"
        assert main(args) == ConfigError.exit_code == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"cannot listen on 127.0.0.1:{port}" in err and hint in err


def test_an_address_not_on_this_machine_says_so(
    emu: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--listen", "127.0.0.1", "--ops-listen", "192.0.2.7:0"]) == 3
    err = capsys.readouterr().err
    assert "192.0.2.7 is not an address of this machine" in err and err.count("\n") == 1


def test_proxy_object_refuses_a_public_address(emu: EmulatorServer) -> None:
    env = resolve()
    with pytest.raises(ConfigError):
        LoopbackProxy(upstream=env.base_url, token_source=env.token_source, host="0.0.0.0")


# -- the local key ---------------------------------------------------------------------------------------


def test_keys_are_random_and_long() -> None:
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(len(k) >= 43 for k in keys)  # 32 bytes, URL-safe base64


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong-key-of-some-length-0123456789abcdef",
        "Basic dXNlcjpwYXNz",
    ],
)
def test_requests_without_the_key_are_refused_401(
    emu: EmulatorServer, proxy: BackgroundProxy, authorization: str | None
) -> None:
    extra = "" if authorization is None else f"Authorization: {authorization}\r\n"
    status, headers, body = raw_request(proxy.port, request_bytes(CHAT, None, extra=extra))
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_api_key" and error["type"] == "invalid_request_error"
    assert chat_requests_seen(emu) == 0


def test_near_miss_keys_are_refused(emu: EmulatorServer, proxy: BackgroundProxy) -> None:
    key = proxy.key
    for wrong in (key[:-1], key + "x", key.upper(), key[:-1] + ("A" if key[-1] != "A" else "B")):
        status, _, _ = raw_request(proxy.port, request_bytes(CHAT, wrong))
        assert status == 401
    status, _, _ = raw_request(proxy.port, request_bytes(CHAT, None, extra=f"X-Api-Key: {key}\r\n"))
    assert status == 401
    assert chat_requests_seen(emu) == 0


def test_openai_sdk_with_a_wrong_key_gets_an_authentication_error(
    emu: EmulatorServer, proxy: BackgroundProxy
) -> None:
    import openai

    with (
        openai.OpenAI(
            base_url=proxy.base_url,
            api_key="not-the-key",
            max_retries=0,
            http_client=openai.DefaultHttpxClient(trust_env=False),
        ) as client,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "x"}]
        )
    assert "vertex-env proxy" in str(caught.value)


# -- never an open proxy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_line",
    [
        "GET http://evil.example/ HTTP/1.1",
        "POST http://evil.example" + CHAT + " HTTP/1.1",
        "GET https://oauth2.googleapis.com/token HTTP/1.1",
        "CONNECT evil.example:443 HTTP/1.1",
        "TRACE " + CHAT + " HTTP/1.1",
    ],
)
def test_absolute_uri_connect_and_trace_are_refused_even_with_the_key(
    emu: EmulatorServer, proxy: BackgroundProxy, request_line: str
) -> None:
    data = (
        f"{request_line}\r\nHost: evil.example\r\nAuthorization: Bearer {proxy.key}\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n"
    ).encode()
    status, _, _ = raw_request(proxy.port, data)
    assert status in (400, 404, 405)  # CONNECT never reaches a route: aiohttp answers 404
    assert all(r["kind"] == "token" for r in emu.admin.requests()["requests"])


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "/__emulator/stats",
        "/token",
        BASE_PATH,  # the base itself, with nothing under it
        BASE_PATH + "x/chat/completions",  # a sibling that shares the prefix
        "/v1/projects/other-project/locations/us-central1/endpoints/openapi/chat/completions",
        "/v1beta1/projects/test-project/locations/us-central1/endpoints/openapi/chat/completions",
        BASE_PATH
        + "/../../../../other-project/locations/us-central1/endpoints/openapi/chat/completions",
        BASE_PATH + "/%2e%2e/%2E%2E/x/chat/completions",
        BASE_PATH + "/./chat/completions",
        BASE_PATH + "/..%2f..%2fx/chat/completions",
        BASE_PATH + "/a%5C..%5C/chat/completions",
    ],
)
def test_paths_outside_the_vertex_base_are_refused(
    emu: EmulatorServer, proxy: BackgroundProxy, target: str
) -> None:
    status, _, body = raw_request(proxy.port, request_bytes(target, proxy.key))
    assert status == 404
    assert json.loads(body)["error"]["code"] == "not_found"
    assert all(r["kind"] == "token" for r in emu.admin.requests()["requests"])


def test_a_foreign_host_header_is_refused(emu: EmulatorServer, proxy: BackgroundProxy) -> None:
    """DNS rebinding: a web page can point its own name at 127.0.0.1, but not change the Host it sends."""
    status, _, _ = raw_request(proxy.port, request_bytes(CHAT, proxy.key, host="evil.example"))
    assert status == 421
    for host in (f"127.0.0.1:{proxy.port}", f"localhost:{proxy.port}", "127.0.0.1"):
        status, _, _ = raw_request(proxy.port, request_bytes(CHAT, proxy.key, host=host))
        assert status == 200
    assert chat_requests_seen(emu) == 3


# -- what reaches Google ---------------------------------------------------------------------------------

HOP_BY_HOP_REQUEST = (
    "Keep-Alive: timeout=5\r\n"
    "TE: trailers\r\n"
    "Trailer: X-Checksum\r\n"
    "Upgrade: h2c\r\n"
    "Proxy-Authorization: Basic c2VjcmV0OnNlY3JldA==\r\n"
    "Proxy-Connection: keep-alive\r\n"
    "X-Named-Hop: dropped\r\n"
    "X-Kept: kept\r\n"
    "Connection: close, X-Named-Hop\r\n"
)


def test_hop_by_hop_headers_are_stripped_and_the_local_key_never_reaches_google(
    emu: EmulatorServer, proxy: BackgroundProxy
) -> None:
    data = (
        f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n"
        f"Authorization: Bearer {proxy.key}\r\n{HOP_BY_HOP_REQUEST}"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    status, _, _ = raw_request(proxy.port, data)
    assert status == 200
    record = emu.admin.requests(kind="chat")["chat"][-1]
    assert (
        record["token_id"] is not None
    )  # the emulator accepted it: the Authorization was a Google token
    names = {name.lower() for name in record["headers"]}
    for gone in (
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "x-named-hop",
    ):
        assert gone not in names
    assert "x-named-hop" not in record["headers"].get("Connection", "").lower()
    assert record["headers"]["X-Kept"] == "kept"
    assert record["headers"]["Host"] == emu.host_port  # set for the upstream, not the client's
    for value in record["headers"].values():
        assert proxy.key not in value
    assert proxy.key not in json.dumps(emu.admin.requests()) + json.dumps(emu.admin.stats())


def test_hop_by_hop_headers_from_upstream_are_stripped(emu: EmulatorServer) -> None:
    """The emulator cannot be told to send hop-by-hop headers, so a raw upstream of the test's own does."""
    answer = (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: 2\r\n"
        b"Connection: keep-alive, X-Upstream-Hop\r\n"
        b"Keep-Alive: timeout=30\r\n"
        b"Proxy-Authenticate: Basic realm=x\r\n"
        b"Trailer: X-Checksum\r\n"
        b"Upgrade: h2c\r\n"
        b"X-Upstream-Hop: dropped\r\n"
        b"X-Upstream-Kept: kept\r\n"
        b"\r\n{}"
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    seen: list[bytes] = []

    def upstream() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            seen.append(data)
            conn.sendall(answer)
            time.sleep(0.2)

    thread = threading.Thread(target=upstream)
    thread.start()
    env = resolve()
    upstream_url = f"http://127.0.0.1:{listener.getsockname()[1]}{BASE_PATH}"
    try:
        with BackgroundProxy(
            LoopbackProxy(upstream=upstream_url, token_source=env.token_source)
        ) as running:
            status, headers, body = raw_request(
                running.port, request_bytes(CHAT, running.key, body=b"{}")
            )
            key = running.key
    finally:
        thread.join(timeout=10)
        listener.close()
    assert status == 200 and body == b"{}"
    for gone in ("keep-alive", "proxy-authenticate", "trailer", "upgrade", "x-upstream-hop"):
        assert gone not in headers
    assert headers["x-upstream-kept"] == "kept"
    sent = seen[0].decode("latin-1")
    assert key not in sent
    assert f"Authorization: Bearer {TOKEN_PREFIX}" in sent


# -- bounded resources -----------------------------------------------------------------------------------


def test_request_bodies_over_32_mib_are_refused_413(
    emu: EmulatorServer, proxy: BackgroundProxy
) -> None:
    assert MAX_BODY == 32 * 1024 * 1024
    body = b"x" * (MAX_BODY + 1)
    status, _, answer = raw_request(
        proxy.port, request_bytes(CHAT, proxy.key, body=body), timeout=30
    )
    assert status == 413
    assert json.loads(answer)["error"]["code"] == "too_large"
    assert chat_requests_seen(emu) == 0


def test_idle_keep_alive_connections_are_closed(emu: EmulatorServer) -> None:
    assert 0 < KEEPALIVE_TIMEOUT <= 120
    env = resolve()
    proxy = LoopbackProxy(
        upstream=env.base_url, token_source=env.token_source, keepalive_timeout=0.5
    )
    with (
        BackgroundProxy(proxy) as running,
        socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock,
    ):
        request = request_bytes(CHAT, running.key).replace(b"Connection: close", b"X-Keep: 1")
        sock.sendall(request)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(request)  # kept alive: a second request on the same connection is served
        received = b""
        # drain both answers, then the close: recv returns b"" (the proxy closed the idle connection); a
        # connection kept open would end in the socket's TimeoutError instead
        while chunk := sock.recv(65536):
            received += chunk
        assert received.count(b"HTTP/1.1 200") == 1, "the second answer, then the close"


# -- nothing secret in logs ------------------------------------------------------------------------------


def test_logs_never_hold_the_key_or_a_token(
    emu: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with BackgroundProxy.for_environment(resolve()) as running:
        key = running.key
        raw_request(running.port, request_bytes(CHAT, key))
        raw_request(running.port, request_bytes(CHAT, key + "x"))
        raw_request(running.port, request_bytes("http://evil.example/", key))
        emu.admin.fault("chat", close=True)
        raw_request(running.port, request_bytes(CHAT, key))
        emu.admin.expire()
        raw_request(running.port, request_bytes(CHAT, key))
        token = running.proxy.tokens._token
    assert token is not None
    assert running.stats.upstream_errors >= 1 and running.stats.upstream_401_retries == 1
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert key not in text
    assert token.value not in text
    assert TOKEN_PREFIX not in text
    assert key not in repr(running) and key not in repr(running.stats)


def test_loop_and_sessions_close_cleanly(emu: EmulatorServer) -> None:
    """filterwarnings=error turns an unclosed session or loop into a failure; start and stop one twice."""
    env = resolve()

    async def twice() -> None:
        for _ in range(2):
            async with LoopbackProxy(upstream=env.base_url, token_source=env.token_source) as p:
                assert p.port > 0

    asyncio.run(twice())
    running: Any = BackgroundProxy.for_environment(env).start()
    running.stop()
    running.stop()  # idempotent


def test_repr_of_the_proxy_objects_shows_no_key_nor_token(emu: EmulatorServer) -> None:
    with BackgroundProxy.for_environment(resolve()) as running:
        assert raw_request(running.port, request_bytes(CHAT, running.key))[0] == 200
        held = running.proxy.tokens
        token = held.get().value
        shown = " ".join(
            repr(x) for x in (running, running.proxy, held, held.authorize(), running.stats)
        )
    assert running.key not in shown
    assert token not in shown

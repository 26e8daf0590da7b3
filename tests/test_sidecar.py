"""`vertex-env serve` as a sidecar: probes, Prometheus metrics, JSON logs and the drain on SIGTERM.

Every test drives a real `serve` process against the emulator (real google-auth over loopback); metrics are read
with prometheus_client's own text parser; clients speak plain HTTP from this process.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from conftest import start_emulator
from prometheus_client.parser import text_string_to_metric_families

from vertex_env.emulator import TOKEN_PREFIX, EmulatorServer
from vertex_env.proxy.serving import parse_ops_listen
from vertex_env.system.loop_thread import LoopThread
from vertex_env.system.loopback import read_key_file

PROJECT = "test-project"
BASE_PATH = f"/v1/projects/{PROJECT}/locations/us-central1/endpoints/openapi"
CHAT = BASE_PATH + "/chat/completions"


# -- helpers ------------------------------------------------------------------------------------------------


class Serve:
    """A `vertex-env serve --json` process; stderr is collected line by line on a thread."""

    def __init__(self, *args: str, python_prelude: str | None = None) -> None:
        command = [sys.executable, "-m", "vertex_env", "serve", "--json", *args]
        if python_prelude is not None:
            code = f"{python_prelude}\nimport sys\nfrom vertex_env.cli.group import entry_point\nsys.argv[0] = 'vertex-env'\nentry_point()"
            command = [sys.executable, "-c", code, "serve", "--json", *args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=20)
            self._close_pipes()
            raise AssertionError(f"serve did not start: {''.join(self.stderr)}")
        self.announced: dict[str, Any] = json.loads(line)
        self.key: str = self.announced["api_key"]
        self.port: int = self.announced["port"]

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def log_events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.stderr)]

    def wait_for_event(self, event: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.stderr):
                data = json.loads(line)
                if data.get("event") == event:
                    return data  # type: ignore[no-any-return]
            time.sleep(0.02)
        raise AssertionError(f"no {event!r} event in {self.stderr}")

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout: float = 30) -> int:
        """The exit code of a serve that is already stopping (a second SIGTERM would stop it at once)."""
        code = self.process.wait(timeout=timeout)
        self._close_pipes()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._close_pipes()

    def _close_pipes(self) -> None:
        self._reader.join(timeout=5)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()


@pytest.fixture
def serve_processes() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for process in started:
        process.kill()


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        connection.close()


PROMPT = "prompt-text-that-must-not-be-logged"


def chat_body(stream: bool = False) -> bytes:
    return json.dumps(
        {
            "model": "google/gemini-2.5-flash",
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": stream,
        }
    ).encode()


def metric_samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body, headers = request(port, "GET", "/metrics")
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def wait_until(check: Callable[[], bool], timeout: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- probes ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_probes_answer_without_the_key_and_reveal_nothing(
    emu: EmulatorServer, serve_processes: list[Serve]
) -> None:
    serve = Serve("--ops-listen", "127.0.0.1:0", "--log-format", "json")
    serve_processes.append(serve)
    ops_port = serve.wait_for_event("listening")["ops_port"]
    for port in (serve.port, ops_port):
        assert request(port, "GET", "/healthz")[:2] == (200, b"ok\n")
        status, body, _ = request(port, "GET", "/readyz")
        assert (status, body) == (200, b"ready\n")
    # The ops port serves the probes only: no forwarding there, whatever the key.
    status, _, _ = request(
        ops_port, "POST", CHAT, chat_body(), {"Authorization": f"Bearer {serve.key}"}
    )
    assert status == 404
    assert emu.admin.stats().get("chat_ok", 0) == 0
    assert serve.stop() == 0


@pytest.mark.slow
def test_readyz_turns_503_when_no_token_can_be_had_and_recovers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, serve_processes: list[Serve]
) -> None:
    """Tokens live 2 s (margin 1 s): once the held one is past its margin, readiness needs a mint."""
    emulator = start_emulator(monkeypatch, tmp_path, expires_in=2)
    try:
        serve = Serve("--log-format", "json")
        serve_processes.append(serve)
        assert request(serve.port, "GET", "/readyz")[:2] == (200, b"ready\n")
        emulator.admin.fault("token", error="invalid_grant", count=1000)
        wait_until(lambda: request(serve.port, "GET", "/readyz")[0] == 503, what="/readyz to fail")
        status, body, _ = request(serve.port, "GET", "/readyz")
        assert status == 503
        text = body.decode()
        assert text == "not ready: the credential was revoked or expired (invalid_grant)\n"
        assert request(serve.port, "GET", "/healthz")[0] == 200  # alive, only not ready
        failures = metric_samples(serve.port)["vertex_env_token_refresh_failures_total", ()]
        assert failures >= 1

        emulator.admin.clear_faults()
        wait_until(
            lambda: request(serve.port, "GET", "/readyz")[0] == 200, what="/readyz to recover"
        )
        status, answer, _ = request(
            serve.port, "POST", CHAT, chat_body(), {"Authorization": f"Bearer {serve.key}"}
        )
        assert status == 200, answer
        assert serve.stop() == 0
        events = serve.log_events()
        assert any(e["event"] == "token_refresh_failed" for e in events)
        # Neither the probe's answer nor the log reveals the principal, the upstream or a token.
        for secretish in (TOKEN_PREFIX, emulator.host_port, "refresh_token", serve.key):
            assert secretish not in text
        assert TOKEN_PREFIX not in "".join(serve.stderr)
        assert serve.key not in "".join(serve.stderr)
    finally:
        emulator.stop()


@pytest.mark.slow
def test_readyz_during_a_token_outage_mints_at_most_one_at_a_time_and_remembers_the_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, serve_processes: list[Serve]
) -> None:
    """A stranger's probes must not spend the credential: 20 probes (10 at once, then 10 in a row) while the
    token endpoint fails cause one failed mint's requests, not 20 mints (issue 22: 20 probes made 60)."""
    emulator = start_emulator(monkeypatch, tmp_path, expires_in=2)
    try:
        serve = Serve("--log-format", "json")
        serve_processes.append(serve)
        assert request(serve.port, "GET", "/readyz")[0] == 200
        emulator.admin.fault("token", status=503, count=100000)
        time.sleep(
            1.2
        )  # the held token is past its margin (1 s of a 2 s life): readiness needs a mint
        before = emulator.admin.stats()["requests"]["token"]
        statuses: list[int] = []
        threads = [
            threading.Thread(
                target=lambda: statuses.append(request(serve.port, "GET", "/readyz")[0])
            )
            for _ in range(10)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        statuses += [request(serve.port, "GET", "/readyz")[0] for _ in range(10)]
        asked = emulator.admin.stats()["requests"]["token"] - before
        assert statuses == [503] * 20
        assert 1 <= asked <= 4, f"{asked} token requests for 20 probes"
    finally:
        emulator.stop()


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_on_the_proxy_port_obey_the_host_rule(
    emu: EmulatorServer, serve_processes: list[Serve], path: str
) -> None:
    """A DNS-rebinding page reaches the proxy's port under its own name: probes answer it 421, as the proxy
    does. The --ops-listen port has an explicit address (a kubelet's Host is the pod IP): no Host rule there."""
    serve = Serve("--ops-listen", "127.0.0.1:0", "--log-format", "json")
    serve_processes.append(serve)
    ops_port = serve.wait_for_event("listening")["ops_port"]
    status, body, _ = request(serve.port, "GET", path, headers={"Host": "rebound.example:80"})
    assert status == 421, body
    assert request(serve.port, "GET", path, headers={"Host": f"localhost:{serve.port}"})[0] in (
        200,
        404,  # /metrics without the extra
    )
    assert request(ops_port, "GET", path, headers={"Host": "10.1.2.3:9090"})[0] in (200, 404)


@pytest.mark.slow
def test_a_flood_of_refused_requests_logs_a_bounded_number_of_json_lines(
    emu: EmulatorServer, serve_processes: list[Serve]
) -> None:
    """2,000 refused requests of three kinds: one JSON line per kind per interval, as text mode (issue 22:
    84,000 lines in 10 s)."""
    serve = Serve("--log-format", "json")
    serve_processes.append(serve)
    kinds = [
        {},  # no key
        {"Authorization": "Bearer wrong"},  # wrong key
        {"Host": "rebound.example", "Authorization": f"Bearer {serve.key}"},  # foreign Host
    ]
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", serve.port, timeout=15)
    try:
        for number in range(2000):
            try:
                connection.request("POST", CHAT, body=b"{}", headers=kinds[number % 3])
                response = connection.getresponse()
                response.read()
            except (http.client.HTTPException, OSError):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", serve.port, timeout=15)
                continue
            assert response.status in (401, 421)
            if response.will_close:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", serve.port, timeout=15)
    finally:
        connection.close()
    elapsed = time.monotonic() - started
    time.sleep(0.3)  # the last lines reach the reader thread
    refused = [e for e in serve.log_events() if e.get("event") == "request" and "refused" in e]
    intervals = int(elapsed / 10.0) + 1  # LOG_INTERVAL
    assert {e["refused"] for e in refused} == {"no_key", "wrong_key", "foreign_host"}
    assert len(refused) <= 3 * (intervals + 1), f"{len(refused)} lines in {elapsed:.1f} s"
    assert serve.stop() == 0


# -- metrics and JSON logs --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_metrics_count_the_requests_made_and_json_logs_hold_no_secret(
    emu: EmulatorServer, serve_processes: list[Serve]
) -> None:
    serve = Serve("--log-format", "json")
    serve_processes.append(serve)
    auth = {"Authorization": f"Bearer {serve.key}", "Content-Type": "application/json"}
    for _ in range(3):
        assert request(serve.port, "POST", CHAT, chat_body(), auth)[0] == 200
    for _ in range(2):
        status, body, headers = request(serve.port, "POST", CHAT, chat_body(stream=True), auth)
        assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
        assert body.rstrip().endswith(b"data: [DONE]")
    assert emu.admin.expire() == 1  # Vertex now refuses the held token: one 401 retry
    assert request(serve.port, "POST", CHAT, chat_body(), auth)[0] == 200

    assert request(serve.port, "POST", CHAT, chat_body())[0] == 401  # no key
    wrong = {"Authorization": "Bearer " + "w" * 43}
    assert request(serve.port, "POST", CHAT, chat_body(), wrong)[0] == 401
    assert (
        request(serve.port, "POST", CHAT, chat_body(), {**auth, "Host": "evil.example"})[0] == 421
    )
    outside = "/v1/projects/other-project/locations/us-central1/endpoints/openapi/chat/completions"
    assert request(serve.port, "POST", outside, chat_body(), auth)[0] == 404
    huge = b"x" * (32 * 1024 * 1024 + 1)
    try:
        too_large = request(serve.port, "POST", CHAT, huge, auth)[0]
    except (BrokenPipeError, ConnectionResetError):
        too_large = 413  # refused before the whole body was read; the counter below says which way
    assert too_large == 413

    samples = metric_samples(serve.port)

    def requests_total(status_class: str, streaming: str) -> float:
        labels = (("status_class", status_class), ("streaming", streaming))
        return samples["vertex_env_proxy_requests_total", labels]

    assert requests_total("2xx", "false") == 4
    assert requests_total("2xx", "true") == 2
    assert requests_total("4xx", "false") == 5
    assert requests_total("5xx", "false") == 0
    for reason in ("no_key", "wrong_key", "foreign_host", "outside_base", "too_large"):
        assert samples["vertex_env_proxy_refused_total", (("reason", reason),)] == 1, reason
    assert samples["vertex_env_proxy_refused_total", (("reason", "bad_request"),)] == 0
    assert samples["vertex_env_proxy_upstream_401_retries_total", ()] == 1
    # Seven sends upstream: six requests, one of them twice.
    assert samples["vertex_env_proxy_upstream_latency_seconds_count", ()] == 7
    assert samples["vertex_env_proxy_stream_first_byte_seconds_count", ()] == 2
    assert samples["vertex_env_token_refreshes_total", ()] == 2  # at start, after the 401
    assert samples["vertex_env_token_refresh_failures_total", ()] == 0
    assert 3000 < samples["vertex_env_token_expires_in_seconds", ()] <= 3600
    assert samples["vertex_env_proxy_in_flight_requests", ()] == 0
    assert samples["vertex_env_proxy_draining", ()] == 0
    assert emu.admin.stats()["chat_ok"] == 6

    assert serve.stop() == 0
    events = serve.log_events()  # every line is one JSON object (json.loads raised otherwise)
    requests = [e for e in events if e["event"] == "request"]
    assert len(requests) == 11
    for event in requests:
        assert {"time", "level", "event", "status", "duration", "bytes", "route", "retry"} <= set(
            event
        )
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["time"])
    assert [e["retry"] for e in requests].count(True) == 1
    assert {e["route"] for e in requests} == {"/chat/completions", "outside_base"}
    assert sorted(e.get("refused", "") for e in requests if e["status"] >= 400) == sorted(
        ["no_key", "wrong_key", "foreign_host", "outside_base", "too_large"]
    )
    streamed = [e for e in requests if e["streaming"]]
    assert len(streamed) == 2 and all(e["bytes"] > 100 for e in streamed)
    assert events[-1]["event"] == "stopped"
    log_text = "".join(serve.stderr)
    assert TOKEN_PREFIX not in log_text
    assert serve.key not in log_text
    assert "w" * 43 not in log_text
    assert PROMPT not in log_text


@pytest.mark.slow
@pytest.mark.parametrize("switch", ["--debug", "VERTEX_ENV_DEBUG=1"])
def test_debug_records_go_into_the_json_log_and_hold_no_secret(
    switch: str,
    emu: EmulatorServer,
    serve_processes: list[Serve],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--debug with --log-format json: each request to Google is a JSON record of the log, not a plain line."""
    args = ["--log-format", "json"]
    if switch == "--debug":
        args.append("--debug")
    else:
        monkeypatch.setenv("VERTEX_ENV_DEBUG", "1")
    serve = Serve(*args)
    serve_processes.append(serve)
    auth = {"Authorization": f"Bearer {serve.key}", "Content-Type": "application/json"}
    assert request(serve.port, "POST", CHAT, chat_body(), auth)[0] == 200
    assert serve.stop() == 0
    assert serve.stderr
    events = [json.loads(line) for line in serve.stderr]  # every line is JSON
    google = [e for e in events if e["event"] == "google_request"]
    token_requests = [
        e
        for e in google
        if e["method"] == "POST" and e["url"] == "https://oauth2.googleapis.com/token"
    ]
    assert token_requests, events
    record = token_requests[0]
    assert record["level"] == "debug"
    assert record["status"] == 200 and record["emulator"] == emu.host_port
    assert isinstance(record["duration_ms"], int | float) and record["duration_ms"] >= 0
    assert record["message"].startswith("POST https://oauth2.googleapis.com/token via emulator ")
    adc = json.loads(Path(os.environ["GOOGLE_APPLICATION_CREDENTIALS"]).read_text())
    log = "".join(serve.stderr)
    for secret in (TOKEN_PREFIX, serve.key, adc["refresh_token"], adc["client_secret"]):
        assert secret not in log


@pytest.mark.slow
def test_without_the_extra_metrics_answer_404_naming_it(
    emu: EmulatorServer, serve_processes: list[Serve]
) -> None:
    # As if prometheus_client were not installed: importing it fails in the serve process.
    serve = Serve(python_prelude="import sys; sys.modules['prometheus_client'] = None")
    serve_processes.append(serve)
    status, body, _ = request(serve.port, "GET", "/metrics")
    assert status == 404
    assert b"vertex-env[metrics]" in body
    status, answer, _ = request(
        serve.port, "POST", CHAT, chat_body(), {"Authorization": f"Bearer {serve.key}"}
    )
    assert status == 200, answer
    assert serve.stop() == 0


def test_serve_help_names_the_metrics_extra() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vertex_env", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "vertex-env[metrics]" in result.stdout
    for option in ("--log-format", "--drain-timeout", "--ops-listen"):
        assert option in result.stdout


def test_export_and_token_never_import_prometheus_client(emu: EmulatorServer) -> None:
    code = (
        "import sys\nfrom vertex_env.cli.group import main\n"
        "for argv in (['token'], ['export']):\n    assert main(argv) == 0\n"
        "print('prometheus_client' in sys.modules, 'vertex_env.proxy.metrics' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines()[-1] == "False False"


# -- the drain ----------------------------------------------------------------------------------------------


class SlowVertex:
    """In front of the emulator: Google's token traffic passes through; a streamed chat answer sends its first
    event, then waits for `release` before the rest. The emulator writes its events back to back, so a stream
    that is still open when SIGTERM arrives needs an upstream of the test's own."""

    def __init__(self, emulator: EmulatorServer) -> None:
        self.emulator = emulator
        self.release = threading.Event()
        self.streams_started = threading.Event()
        self._thread = LoopThread("slow-vertex")
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.port = 0

    async def _start(self) -> None:
        self._session = ClientSession()
        app = web.Application()
        app.router.add_post(CHAT, self._stream)
        app.router.add_route("*", "/{tail:.*}", self._pass)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.25)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def _close(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        import asyncio

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"n": 1}\n\n')
        self.streams_started.set()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.release.wait, 30)
        await response.write(b'data: {"n": 2}\n\ndata: [DONE]\n\n')
        await response.write_eof()
        return response

    async def _pass(self, request: web.Request) -> web.Response:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self._session.request(
            request.method,
            self.emulator.url + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as answer:
            body = await answer.read()
            return web.Response(status=answer.status, body=body, content_type=answer.content_type)

    def __enter__(self) -> SlowVertex:
        self._thread.start(self._start, self._close)
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.stop()


def _open_stream(port: int, key: str) -> tuple[http.client.HTTPConnection, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(
        "POST", CHAT, body=chat_body(stream=True), headers={"Authorization": f"Bearer {key}"}
    )
    response = connection.getresponse()
    assert response.status == 200
    return connection, response


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.slow
def test_sigterm_lets_a_stream_in_flight_finish_while_new_connections_are_refused(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch, serve_processes: list[Serve]
) -> None:
    with SlowVertex(emu) as slow:
        monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", f"127.0.0.1:{slow.port}")
        serve = Serve(
            "--log-format", "json", "--ops-listen", "127.0.0.1:0", "--drain-timeout", "20"
        )
        serve_processes.append(serve)
        ops_port = serve.wait_for_event("listening")["ops_port"]
        connection, response = _open_stream(serve.port, serve.key)
        first = (
            response.read1()
        )  # the first event has reached the client; the rest is held upstream
        assert first == b'data: {"n": 1}\n\n'

        serve.process.send_signal(signal.SIGTERM)
        serve.wait_for_event("draining")
        assert request(ops_port, "GET", "/readyz")[:2] == (503, b"not ready: draining\n")
        wait_until(lambda: _refused(serve.port), what="new connections to be refused")
        time.sleep(2)  # longer than any default grace: only --drain-timeout keeps the stream alive
        assert serve.process.poll() is None  # still serving the stream

        slow.release.set()
        rest = response.read()
        connection.close()
        assert first + rest == b'data: {"n": 1}\n\ndata: {"n": 2}\n\ndata: [DONE]\n\n'
        assert serve.wait_exit() == 0  # the drain ends with the stream: serve exits by itself
    events = serve.log_events()
    names = [e["event"] for e in events]
    assert names.index("draining") < names.index("stopped")
    drained = [e for e in events if e["event"] == "request"]
    assert [(e["status"], e["streaming"]) for e in drained] == [(200, True)]
    assert next(e for e in events if e["event"] == "draining")["in_flight"] == 1


@pytest.mark.slow
def test_a_stream_longer_than_the_drain_timeout_is_cut_and_serve_still_exits_0(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch, serve_processes: list[Serve]
) -> None:
    with SlowVertex(emu) as slow:
        monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", f"127.0.0.1:{slow.port}")
        serve = Serve("--drain-timeout", "0.5")
        serve_processes.append(serve)
        connection, response = _open_stream(serve.port, serve.key)
        assert response.read1() == b'data: {"n": 1}\n\n'
        started = time.monotonic()
        serve.process.send_signal(signal.SIGTERM)
        assert serve.stop(timeout=20) == 0
        waited = time.monotonic() - started
        with pytest.raises(http.client.IncompleteRead):
            response.read()
        connection.close()
    assert waited < 15  # gave up on the stream (held for 30 s upstream) instead of waiting for it
    assert "stopped" in "".join(serve.stderr)


# -- options ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.0.0.0:9090", ("0.0.0.0", 9090)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::]:9090", ("::", 9090)),
        (":9090", ("0.0.0.0", 9090)),
    ],
)
def test_ops_listen_parses_host_and_port(value: str, expected: tuple[str, int]) -> None:
    assert parse_ops_listen(value) == expected


@pytest.mark.parametrize("value", ["9090", "host", "host:port", "0.0.0.0:99999"])
def test_ops_listen_refuses_anything_else_as_a_usage_error(value: str, emu: EmulatorServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vertex_env", "serve", "--ops-listen", value],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 3, result.stderr
    assert "--ops-listen" in result.stderr
    assert result.stderr.count("\n") == 1


# -- the key file as Kubernetes mounts it (the manifest itself: test_kubernetes.py) -------------------------------


@pytest.mark.parametrize(
    ("mode", "own_group", "accepted"),
    [(0o440, True, True), (0o640, True, False), (0o444, True, False), (0o440, False, False)],
)
def test_a_key_file_as_the_kubelet_mounts_it_is_read_by_its_group_only(
    tmp_path: Path, mode: int, own_group: bool, accepted: bool
) -> None:
    """Root-owned 0440 with the process's own group (a 0400 secret under fsGroup): accepted; nothing looser."""
    if os.geteuid() != 0:  # pragma: no cover - CI runs as root
        pytest.skip("needs root to run as another user and give a file to root")
    uid = gid = 10001
    folder = Path(tempfile.mkdtemp(prefix="vertex-env-kube-"))
    try:
        folder.chmod(0o755)
        key_file = folder / "key"
        key_file.write_text("k" * 48 + "\n")
        os.chown(key_file, 0, gid if own_group else gid + 1)
        key_file.chmod(mode)
        outcome = _as_user(uid, gid, lambda: read_key_file(key_file) == "k" * 48)
    finally:
        shutil.rmtree(folder)
    if accepted:
        assert outcome == "True"
    else:
        assert outcome.startswith("ConfigError:") or outcome.startswith("PermissionError"), outcome
        assert "accessible by others" in outcome or "Permission denied" in outcome
        assert "k" * 48 not in outcome


def _as_user(uid: int, gid: int, check: Callable[[], bool]) -> str:
    """`check()` run in a forked child with effective uid/gid of another user; its result or error, as text."""
    # What read_key_file imports lazily, imported here: the child, as the other user, may be unable to read
    # the interpreter's lib-dynload (pyenv's under root's 0700 home), and `grp` failing to import is no verdict.
    import grp  # noqa: F401
    import pwd  # noqa: F401

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            os.setgroups([])
            os.setegid(gid)
            os.seteuid(uid)
            try:
                text = str(check())
            except Exception as err:
                text = f"{type(err).__name__}: {err}"
            os.write(write, text.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    return text


@pytest.mark.slow
def test_a_second_signal_stops_at_once_without_waiting_for_the_drain(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch, serve_processes: list[Serve]
) -> None:
    with SlowVertex(emu) as slow:
        monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", f"127.0.0.1:{slow.port}")
        serve = Serve("--log-format", "json", "--drain-timeout", "60")
        serve_processes.append(serve)
        connection, response = _open_stream(serve.port, serve.key)
        assert response.read1() == b'data: {"n": 1}\n\n'
        serve.process.send_signal(signal.SIGTERM)
        serve.wait_for_event("draining")
        assert serve.process.poll() is None  # draining: it would wait up to 60 s for the stream
        serve.process.send_signal(signal.SIGINT)
        assert serve.stop(timeout=15) == 0
        connection.close()
    assert "forced" in [e["event"] for e in serve.log_events()]


@pytest.mark.slow
def test_a_taken_ops_port_is_one_line_and_exit_3(
    emu: EmulatorServer, serve_processes: list[Serve]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "vertex_env", "serve", "--ops-listen", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 3, result.stderr
    assert "--ops-listen" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

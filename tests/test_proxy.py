"""The loopback proxy, `run --proxy` and `vertex-env serve` against the emulator and the real openai SDK.

Tokens come from the real token core (google-auth through the transport seam to the emulator); clients are the
real openai SDK — in-process, or as the child of `run_with_proxy`. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from conftest import http, start_emulator, wait_for

from vertex_env.cli.group import main
from vertex_env.emulator import TOKEN_PREFIX, EmulatorServer, write_authorized_user
from vertex_env.environment import Environment, resolve
from vertex_env.errors import CommandNotFoundError
from vertex_env.proxy.run_proxy import run_with_proxy
from vertex_env.proxy.server import BackgroundProxy, LoopbackProxy

PROJECT = "test-project"
BASE_PATH = f"/v1/projects/{PROJECT}/locations/us-central1/endpoints/openapi"


@pytest.fixture
def short_tokens(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[EmulatorServer]:
    """Tokens that live 2 s: the token core's margin is then 1 s, so a token rotates about every second."""
    server = start_emulator(monkeypatch, tmp_path, expires_in=2)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy(emu: EmulatorServer) -> Iterator[BackgroundProxy]:
    with BackgroundProxy.for_environment(resolve()) as running:
        yield running


def client_for(proxy: BackgroundProxy) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=proxy.base_url,
        api_key=proxy.key,
        max_retries=0,
        http_client=openai.DefaultHttpxClient(trust_env=False),
    )


def post(
    url: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    return http(url, method="POST", body=body, headers=headers)


def header(record: dict[str, Any], name: str) -> str | None:
    for key, value in record["headers"].items():
        if key.lower() == name.lower():
            return str(value)
    return None


# -- the proxy in-process --------------------------------------------------------------------------------


def test_openai_sdk_chat_and_stream_through_the_proxy(
    emu: EmulatorServer, proxy: BackgroundProxy
) -> None:
    with client_for(proxy) as client:
        completion = client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "Say hello"}]
        )
        emu.admin.reply("one two three four five six seven eight")
        chunks = list(
            client.chat.completions.create(
                model="google/gemini-2.5-flash",
                messages=[{"role": "user", "content": "count"}],
                stream=True,
            )
        )
    assert completion.choices[0].message.content == "Emulated reply to: Say hello"
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len(pieces) > 3
    assert "".join(pieces) == "one two three four five six seven eight"
    recorded = emu.admin.requests(kind="chat")["chat"]
    assert [r["path"] for r in recorded] == [BASE_PATH + "/chat/completions"] * 2
    assert all(r["token_id"] is not None for r in recorded)  # the emulator accepted a Google token


def test_upstream_401_invalidates_mints_once_and_retries(
    emu: EmulatorServer, proxy: BackgroundProxy
) -> None:
    with client_for(proxy) as client:
        client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "a"}]
        )
        assert emu.admin.expire() == 1  # the proxy's token is now refused by "Google"
        completion = client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "b"}]
        )
        emu.admin.expire()
        streamed = list(
            client.chat.completions.create(
                model="google/gemini-2.5-flash",
                messages=[{"role": "user", "content": "c"}],
                stream=True,
            )
        )
    assert completion.choices[0].message.content == "Emulated reply to: b"
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    stats = emu.admin.stats()
    assert stats["chat_rejected"] == 2
    assert stats["chat_ok"] == 3
    assert stats["tokens_issued"] == 3
    assert proxy.stats.upstream_401_retries == 2


def test_a_second_upstream_401_reaches_the_client(
    emu: EmulatorServer, proxy: BackgroundProxy
) -> None:
    """One retry only: a 401 that persists with a fresh token is Google's answer, passed through."""
    emu.admin.reply(status=401)
    emu.admin.reply(status=401)
    with client_for(proxy) as client, pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "a"}]
        )
    assert proxy.stats.upstream_401_retries == 1


def test_request_body_passes_through_byte_for_byte(
    emu: EmulatorServer, proxy: BackgroundProxy
) -> None:
    body = (
        b'{ "model":"google/gemini-2.5-flash",\n  "messages":[{"role":"user","content":['
        b'{"type":"text","text":"Describe \\u00e9t\xc3\xa9 \xf0\x9f\x8c\x9e","extra_content":{"google":{"thought":true}}},'
        b'{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},'
        b'{"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}}]}],'
        b'"google":{"safety_settings":[{"category":"HARM_CATEGORY_HATE_SPEECH","threshold":"BLOCK_NONE"}],'
        b'"thinking_config":{"thinking_budget":1000}},'
        b'"reasoning_effort":"low","seed":7,"stop":["\\n\\n"],"unknown_field":{"nested":[1,2.50,null]},'
        b'"temperature":0.0   }'
    )
    status, headers, answer = post(
        proxy.base_url + "/chat/completions",
        body,
        {"Authorization": f"Bearer {proxy.key}", "Content-Type": "application/json"},
    )
    assert status == 200, answer
    assert int(headers["Content-Length"]) == len(answer)
    record = emu.admin.requests(kind="chat")["chat"][-1]
    assert record["raw_body"].encode("utf-8") == body
    assert header(record, "Content-Type") == "application/json"
    assert header(record, "Content-Length") == str(len(body))


def test_openai_extra_body_and_multimodal_parts_arrive_unchanged(
    emu: EmulatorServer, proxy: BackgroundProxy
) -> None:
    messages: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "gs://bucket/cat.png"}},
            ],
        }
    ]
    with client_for(proxy) as client:
        client.chat.completions.create(
            model="google/gemini-2.5-flash",
            messages=messages,
            extra_body={"google": {"thinking_config": {"include_thoughts": True}}},
        )
    body = emu.admin.requests(kind="chat")["chat"][-1]["body"]
    assert body["messages"] == messages
    assert body["google"] == {"thinking_config": {"include_thoughts": True}}


def test_quota_project_is_sent_as_x_goog_user_project(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERTEX_ENV_QUOTA_PROJECT", "billing-project")
    with BackgroundProxy.for_environment(resolve()) as running, client_for(running) as client:
        client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "a"}]
        )
    record = emu.admin.requests(kind="chat")["chat"][-1]
    assert header(record, "x-goog-user-project") == "billing-project"


def test_no_quota_project_no_header(emu: EmulatorServer, proxy: BackgroundProxy) -> None:
    with client_for(proxy) as client:
        client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "a"}]
        )
    assert header(emu.admin.requests(kind="chat")["chat"][-1], "x-goog-user-project") is None


def test_other_paths_under_the_base_are_forwarded(
    emu: EmulatorServer, proxy: BackgroundProxy
) -> None:
    """`/responses`, `/embeddings`, …: anything under the base but `/models` goes to Vertex (the emulator answers
    Google's 404 for a route Vertex lacks, and serves `/embeddings`). `/models` is the proxy's own
    (tests/test_bridge_models.py): a POST there is refused here, never forwarded."""
    status, _, answer = post(
        proxy.base_url + "/responses",
        b'{"model":"google/gemini-2.5-flash","input":"x"}',
        {"Authorization": f"Bearer {proxy.key}"},
    )
    assert status == 404
    assert emu.admin.requests()["requests"][-1]["path"] == BASE_PATH + "/responses"
    forwarded = len(emu.admin.requests()["requests"])
    status, _, answer = post(
        proxy.base_url + "/models",
        b'{"model":"google/text-embedding-005","input":"x"}',
        {"Authorization": f"Bearer {proxy.key}"},
    )
    assert status == 405
    assert len(emu.admin.requests()["requests"]) == forwarded
    status, _, answer = post(
        proxy.base_url + "/embeddings",
        b'{"model":"google/text-embedding-005","input":"x","encoding_format":"float"}',
        {"Authorization": f"Bearer {proxy.key}"},
    )
    assert status == 200, answer
    assert json.loads(answer)["data"][0]["object"] == "embedding"
    assert emu.admin.requests()["requests"][-1]["path"] == BASE_PATH + "/embeddings"


def test_upstream_failure_is_a_502_json_error(emu: EmulatorServer, proxy: BackgroundProxy) -> None:
    emu.admin.fault("chat", close=True)
    status, _, answer = post(
        proxy.base_url + "/chat/completions", b"{}", {"Authorization": f"Bearer {proxy.key}"}
    )
    assert status == 502
    assert json.loads(answer)["error"]["code"] == "upstream_error"


def test_streaming_is_relayed_as_it_arrives_not_buffered(emu: EmulatorServer) -> None:
    """An upstream that holds its second event until the client has the first: a buffering proxy deadlocks.

    The emulator writes its events back to back, so this one upstream is a small SSE server of the test's own.
    """
    env = resolve()
    outcome: dict[str, Any] = {}

    async def scenario() -> None:
        first_seen = asyncio.Event()

        async def sse(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            await response.write(b'data: {"n": 1}\n\n')
            try:
                await asyncio.wait_for(first_seen.wait(), timeout=5)
                await response.write(b'data: {"n": 2}\n\ndata: [DONE]\n\n')
            except asyncio.TimeoutError:
                await response.write(b"data: BUFFERED\n\n")
            await response.write_eof()
            return response

        app = web.Application()
        app.router.add_post(BASE_PATH + "/chat/completions", sse)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        upstream = f"http://127.0.0.1:{port}{BASE_PATH}"
        proxy = LoopbackProxy(upstream=upstream, token_source=env.token_source, min_ttl=300)
        try:
            await proxy.start()
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    proxy.base_url + "/chat/completions",
                    data=b'{"stream": true}',
                    headers={"Authorization": f"Bearer {proxy.key}"},
                ) as response,
            ):
                chunks: list[bytes] = []
                async for chunk in response.content.iter_any():
                    chunks.append(chunk)
                    first_seen.set()
                outcome["chunks"] = chunks
        finally:
            await proxy.close()
            await runner.cleanup()

    asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    chunks = outcome["chunks"]
    assert chunks[0] == b'data: {"n": 1}\n\n'
    assert b"".join(chunks) == b'data: {"n": 1}\n\ndata: {"n": 2}\n\ndata: [DONE]\n\n'


# -- run --proxy: the openai SDK as the child ------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    import openai

    seconds, report = float(sys.argv[1]), sys.argv[2]
    client = openai.OpenAI(max_retries=0)  # OPENAI_BASE_URL and OPENAI_API_KEY from the environment
    ok = failed = streamed = 0
    errors = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if (ok + failed) % 2:
                chunks = list(client.chat.completions.create(
                    model="google/gemini-2.5-flash",
                    messages=[{"role": "user", "content": "one two three four five"}],
                    stream=True,
                ))
                text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                assert text == "Emulated reply to: one two three four five", text
                streamed += 1
            else:
                answer = client.chat.completions.create(
                    model="google/gemini-2.5-flash",
                    messages=[{"role": "user", "content": "hi"}],
                )
                assert answer.choices[0].message.content == "Emulated reply to: hi"
            ok += 1
        except Exception as err:
            failed += 1
            errors.append(repr(err)[:300])
        time.sleep(0.01)
    with open(report, "w") as fh:
        json.dump({
            "ok": ok, "failed": failed, "streamed": streamed, "errors": errors[:5],
            "key": os.environ["OPENAI_API_KEY"], "base_url": os.environ["OPENAI_BASE_URL"],
            "expires_at": os.environ.get("VERTEX_ENV_EXPIRES_AT"),
        }, fh)
    sys.exit(0 if failed == 0 else 1)
    """
)


@pytest.mark.slow
def test_openai_child_runs_across_token_rotations_without_a_failed_request(
    short_tokens: EmulatorServer, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    code = run_with_proxy(resolve(), [sys.executable, "-c", CHILD, "7", str(report)])
    result = json.loads(report.read_text())
    assert result["failed"] == 0, result["errors"]
    assert code == 0
    assert result["ok"] > 40 and result["streamed"] > 20
    assert result["base_url"].startswith("http://127.0.0.1:")
    assert result["base_url"].endswith(BASE_PATH)
    assert len(result["key"]) >= 43 and not result["key"].startswith(TOKEN_PREFIX)
    assert result["expires_at"] is None  # the local key does not expire
    stats = short_tokens.admin.stats()
    assert stats["tokens_issued"] >= 5  # ≥ 5 rotations underneath the child
    assert stats["chat_ok"] == result["ok"]


@pytest.mark.slow
def test_openai_child_survives_tokens_expired_under_it(emu: EmulatorServer, tmp_path: Path) -> None:
    """Google refuses the token mid-run (revoked, expired early): the proxy's retry hides it from the child."""
    report = tmp_path / "report.json"
    stop = threading.Event()

    def expire_repeatedly() -> None:
        # Every token dies once a request succeeded with it, never twice within one retry: a fixed 0.5 s
        # timer could also kill the fresh token between the proxy's mint and its one retry (a double refusal
        # no single retry can hide), which failed this test now and then.
        seen = emu.admin.stats()["chat_ok"]
        while not stop.wait(0.05):
            if emu.admin.stats()["chat_ok"] > seen:
                emu.admin.expire()
                seen = emu.admin.stats()["chat_ok"]

    expirer = threading.Thread(target=expire_repeatedly)
    expirer.start()
    try:
        code = run_with_proxy(resolve(), [sys.executable, "-c", CHILD, "4", str(report)])
    finally:
        stop.set()
        expirer.join()
    result = json.loads(report.read_text())
    assert result["failed"] == 0, result["errors"]
    assert code == 0
    stats = emu.admin.stats()
    assert stats["chat_rejected"] >= 3  # each one retried with a fresh token
    assert stats["chat_ok"] == result["ok"]


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_child_exit_code_passes_through(emu: EmulatorServer, code: int) -> None:
    assert run_with_proxy(resolve(), [sys.executable, "-c", f"raise SystemExit({code})"]) == code


def test_child_killed_by_a_signal_gives_128_plus_n(emu: EmulatorServer) -> None:
    script = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    assert run_with_proxy(resolve(), [sys.executable, "-c", script]) == 128 + signal.SIGKILL


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signals_are_forwarded_to_the_child_and_the_proxy_stops(
    emu: EmulatorServer, tmp_path: Path, signum: signal.Signals
) -> None:
    ready, port_file = tmp_path / "ready", tmp_path / "port"
    script = textwrap.dedent(
        f"""
        import os, signal, urllib.parse
        open({str(port_file)!r}, "w").write(str(urllib.parse.urlsplit(os.environ["OPENAI_BASE_URL"]).port))
        open({str(ready)!r}, "w").close()
        signal.pause()
        """
    )

    def send_when_ready() -> None:
        wait_for(ready.exists, 20, f"{ready} to appear")
        os.kill(os.getpid(), signum)

    sender = threading.Thread(target=send_when_ready)
    sender.start()
    try:
        code = run_with_proxy(resolve(), [sys.executable, "-c", script])
    finally:
        sender.join()
    assert code == 128 + signum
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(port_file.read_text())), timeout=2).close()


def test_vertex_env_run_proxy_serves_the_child_and_returns_its_code(
    emu: EmulatorServer, tmp_path: Path
) -> None:
    seen = tmp_path / "seen.json"
    script = textwrap.dedent(
        f"""
        import json, os, sys, urllib.request
        request = urllib.request.Request(
            os.environ["OPENAI_BASE_URL"] + "/chat/completions",
            data=b'{{"model": "google/gemini-2.5-flash", "messages": [{{"role": "user", "content": "hi"}}]}}',
            headers={{"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}},
        )
        answer = json.load(urllib.request.urlopen(request, timeout=10))
        json.dump({{"content": answer["choices"][0]["message"]["content"],
                   "active": os.environ.get("VERTEX_ENV_ACTIVE")}}, open({str(seen)!r}, "w"))
        sys.exit(5)
        """
    )
    assert main(["run", "--proxy", "--", sys.executable, "-c", script]) == 5
    assert json.loads(seen.read_text()) == {
        "content": "Emulated reply to: hi",
        "active": "proxy",
    }  # marks a proxied child for the hooks


def test_command_not_found_is_an_error_before_any_child(emu: EmulatorServer) -> None:
    with pytest.raises(CommandNotFoundError) as caught:
        run_with_proxy(resolve(), ["vertex-env-no-such-command-xyz"])
    assert caught.value.exit_code == 127


def test_run_proxy_fails_before_the_child_without_credentials(
    emu: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    marker = tmp_path / "child-ran"
    env: Environment = resolve()
    with pytest.raises(Exception) as caught:
        run_with_proxy(env, [sys.executable, "-c", f"open({str(marker)!r}, 'w')"])
    assert getattr(caught.value, "exit_code", 0) != 0
    assert not marker.exists()


# -- vertex-env serve ------------------------------------------------------------------------------------


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vertex_env", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _stop(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=20)
    return process.returncode, out, err


@pytest.mark.slow
def test_serve_prints_posix_exports_serves_and_stops_cleanly_on_sigterm(
    emu: EmulatorServer,
) -> None:
    process = _serve()
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
        variables: dict[str, str] = {}
        for line in lines:
            match = re.fullmatch(r"export (OPENAI_BASE_URL|OPENAI_API_KEY)=(\S+);\n", line)
            assert match, line
            variables[match[1]] = shlex.split(match[2])[0]
        with openai.OpenAI(
            base_url=variables["OPENAI_BASE_URL"],
            api_key=variables["OPENAI_API_KEY"],
            max_retries=0,
            http_client=openai.DefaultHttpxClient(trust_env=False),
        ) as client:
            answer = client.chat.completions.create(
                model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}]
            )
        assert answer.choices[0].message.content == "Emulated reply to: hi"
    finally:
        code, _, err = _stop(process)
    assert code == 0
    assert "listening on http://127.0.0.1:" in err and "stopped" in err
    assert variables["OPENAI_API_KEY"] not in err
    assert TOKEN_PREFIX not in err


@pytest.mark.slow
def test_serve_write_env_makes_a_private_dotenv_and_keeps_other_lines(
    emu: EmulatorServer, tmp_path: Path
) -> None:
    target = tmp_path / "app.env"
    target.write_text("# my app\nDEBUG=1\nOPENAI_API_KEY=stale\n")
    target.chmod(0o644)
    process = _serve("--write-env", str(target), "--port", "0")
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "listening on" in line:
                break
        text = target.read_text()
    finally:
        code, out, _ = _stop(process)
    assert code == 0
    assert out == ""  # the variables went to the file, not stdout
    assert target.stat().st_mode & 0o777 == 0o600
    assert text.startswith("# my app\nDEBUG=1\nOPENAI_API_KEY=")
    assert "stale" not in text
    assert re.search(
        r"^OPENAI_BASE_URL=http://127\.0\.0\.1:\d+" + re.escape(BASE_PATH) + "$", text, re.M
    )


@pytest.mark.slow
def test_serve_key_from_environment_and_key_file(emu: EmulatorServer, tmp_path: Path) -> None:
    fixed = "k" * 40
    env = {**os.environ, "VERTEX_ENV_PROXY_KEY": fixed}
    process = _serve("--json", env=env)
    try:
        assert process.stdout is not None
        announced = json.loads(process.stdout.readline())
    finally:
        _stop(process)
    assert announced["api_key"] == fixed

    key_file = tmp_path / "key"
    key_file.write_text("f" * 48 + "\n")
    key_file.chmod(0o600)
    process = _serve("--json", "--key-file", str(key_file))
    try:
        assert process.stdout is not None
        announced = json.loads(process.stdout.readline())
    finally:
        _stop(process)
    assert announced["api_key"] == "f" * 48


def test_serve_refuses_a_short_key(emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERTEX_ENV_PROXY_KEY", "short")
    assert main(["serve"]) == 3


def test_serve_help_ends_with_a_real_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert lines[-1].strip().startswith("vertex-env serve ")
    assert "VERTEX_ENV_PROXY_PORT" in "\n".join(lines)


@pytest.mark.slow
def test_run_proxy_google_sets_the_google_variables_too(
    isolated_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    from vertex_env.emulator import EmulatorServer

    with EmulatorServer() as emu:
        env = dict(
            os.environ,
            VERTEX_ENV_EMULATOR_HOST=emu.host_port,
            VERTEX_ENV_PROJECT="test-project",
            VERTEX_ENV_LOCATION="europe-west4",
            GOOGLE_APPLICATION_CREDENTIALS=str(
                write_authorized_user(isolated_machine / "adc.json")
            ),
        )
        script = "import os; print(os.environ['GOOGLE_CLOUD_PROJECT'], os.environ['GOOGLE_CLOUD_LOCATION'], os.environ['VERTEX_ENV_ACTIVE'])"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "vertex_env",
                "run",
                "--proxy",
                "--google",
                "--",
                sys.executable,
                "-c",
                script,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["test-project", "europe-west4", "proxy"]

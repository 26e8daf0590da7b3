"""The pytest plugin as a user meets it: a sample app tested offline with only `vertex_emulator` and
`vertex_env_offline`; and the plugin costing nothing to a test that does not ask for it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import openai
import pytest
import sample_app

import vertex_env.testing
from vertex_env.testing import OfflineVertex, VertexEmulator


def test_the_app_returns_what_the_model_answers(vertex_env_offline: OfflineVertex) -> None:
    vertex_env_offline.emulator.reply_text("It is sunny in Lyon.")
    client = sample_app.make_client()

    assert sample_app.ask(client, "Weather in Lyon?") == "It is sunny in Lyon."
    (sent,) = vertex_env_offline.emulator.chat_bodies()
    assert sent["messages"] == [{"role": "user", "content": "Weather in Lyon?"}]
    assert sent["model"] == sample_app.MODEL


def test_the_app_joins_a_streamed_answer(vertex_env_offline: OfflineVertex) -> None:
    vertex_env_offline.emulator.reply_text("Sunny with a light breeze all afternoon.")
    answer = sample_app.ask_streaming(sample_app.make_client(), "Weather?")
    assert answer == "Sunny with a light breeze all afternoon."


def test_the_agent_runs_the_tool_the_model_asks_for(vertex_env_offline: OfflineVertex) -> None:
    emulator = vertex_env_offline.emulator
    emulator.reply_tool_call("get_weather", {"city": "Lyon"}, call_id="call_1")
    emulator.reply_text("21.5 °C and sunny in Lyon.")

    answer = sample_app.weather_agent(sample_app.make_client(), "Weather in Lyon?")

    assert answer == "21.5 °C and sunny in Lyon."
    first, second = emulator.chat_bodies()
    assert first["tools"][0]["function"]["name"] == "get_weather"
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool"
    assert tool_message["tool_call_id"] == "call_1"
    assert '"temperature_c": 21.5' in tool_message["content"]


def test_the_app_parses_structured_output(vertex_env_offline: OfflineVertex) -> None:
    result = sample_app.forecast(sample_app.make_client(), "Nice")
    assert isinstance(result, sample_app.Forecast)
    (sent,) = vertex_env_offline.emulator.chat_bodies()
    assert sent["response_format"]["type"] == "json_schema"


def test_the_app_apologises_when_vertex_refuses(vertex_env_offline: OfflineVertex) -> None:
    vertex_env_offline.emulator.reply_error(403)
    answer = sample_app.ask_or_apologise(sample_app.make_client(), "Weather?")
    assert answer == "Sorry, the assistant is unavailable (403)."


def test_the_app_keeps_working_across_a_token_expiry(vertex_env_offline: OfflineVertex) -> None:
    client = sample_app.make_client()
    vertex_env_offline.emulator.reply_text("before", repeat=True)
    assert sample_app.ask(client, "one") == "before"

    vertex_env_offline.expire_tokens()

    assert sample_app.ask(client, "two") == "before"
    assert vertex_env_offline.emulator.stats()["tokens_issued"] == 2


def test_a_key_read_once_from_the_environment_goes_stale_until_refreshed(
    vertex_env_offline: OfflineVertex,
) -> None:
    client = openai.OpenAI(max_retries=0)  # OPENAI_BASE_URL and OPENAI_API_KEY from the fixture
    assert client.base_url == vertex_env_offline.base_url + "/"
    assert sample_app.ask(client, "hi")

    vertex_env_offline.expire_tokens()
    with pytest.raises(openai.AuthenticationError):
        sample_app.ask(client, "hi")

    vertex_env_offline.refresh_api_key()
    assert sample_app.ask(openai.OpenAI(max_retries=0), "hi")


def test_the_emulator_refuses_a_token_it_never_issued(vertex_emulator: VertexEmulator) -> None:
    client = openai.OpenAI(
        base_url=vertex_emulator.chat_base_url(), api_key="ya29.made-up", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        sample_app.ask(client, "hi")
    assert vertex_emulator.chat_rejected == 1


def test_the_emulator_fixture_counts_requests_and_applies_faults(
    vertex_env_offline: OfflineVertex,
) -> None:
    emulator = vertex_env_offline.emulator
    assert emulator.token_requests == 1  # the fixture's OPENAI_API_KEY
    emulator.fault("chat", status=503)
    client = openai.OpenAI(max_retries=1)
    assert sample_app.ask(client, "hi")  # the SDK retried the 503
    assert emulator.chat_requests == 2
    assert emulator.stats()["faults_applied"] == 1


# -- the plugin is inert ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_importing_the_plugin_imports_no_emulator_nor_sdk() -> None:
    code = (
        "import sys, vertex_env.testing\n"
        "heavy = ('aiohttp', 'openai', 'httpx', 'google.auth', 'vertex_env.emulator')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "[]"
    assert "aiohttp" not in result.stderr  # -X importtime lists every module imported


def test_the_plugin_has_no_hooks_and_no_autouse_fixtures() -> None:
    tree = ast.parse(Path(vertex_env.testing.__file__).read_text())
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    assert not [f.name for f in functions if f.name.startswith("pytest_")]
    autouse = [
        f.name
        for f in functions
        for decorator in f.decorator_list
        if isinstance(decorator, ast.Call)
        for keyword in decorator.keywords
        if keyword.arg == "autouse"
    ]
    assert autouse == []
    fixtures = sorted(
        f.name
        for f in functions
        if any(ast.unparse(d).startswith("pytest.fixture") for d in f.decorator_list)
    )
    assert fixtures == ["vertex_emulator", "vertex_env_offline"]


@pytest.fixture
def developer_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real developer's shell: a project, a profile, an OpenAI key and a proxy that nothing answers."""
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "real-project")
    monkeypatch.setenv("VERTEX_ENV_LOCATION", "europe-west4")
    monkeypatch.setenv("VERTEX_ENV_PROFILE", "work")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-key")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-real")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")


def test_offline_fixture_hides_the_developers_own_setup(
    developer_machine: None, vertex_env_offline: OfflineVertex
) -> None:
    assert "/projects/emulated-project/locations/us-central1/" in vertex_env_offline.base_url
    assert vertex_env_offline.environ["OPENAI_API_KEY"] != "sk-real-key"
    vertex_env_offline.emulator.reply_text("offline")
    assert sample_app.ask(sample_app.make_client(), "hi") == "offline"
    headers = vertex_env_offline.emulator.admin.requests()["chat"][0]["headers"]
    assert "openai-organization" not in {name.lower() for name in headers}

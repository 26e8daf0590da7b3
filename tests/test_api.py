"""The Python API against the emulator, with the real openai SDK and httpx: fresh tokens, rotation, 401 recovery,
threads, fork, asyncio; and the cost of importing it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from typing import Any

import httpx
import openai
import pydantic
import pytest
from openai.types.chat import ChatCompletionMessageParam

import vertex_env
from vertex_env.emulator import TOKEN_PREFIX
from vertex_env.testing import OfflineVertex

MODEL = "google/gemini-2.5-flash"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


class CityFacts(pydantic.BaseModel):
    city: str
    population: int


def run_examples(client: openai.OpenAI, offline: OfflineVertex) -> None:
    """The docstring examples: chat, streaming, tools, structured output."""
    offline.emulator.reply_text("Hi there")
    reply = client.chat.completions.create(model=MODEL, messages=HELLO)
    assert reply.choices[0].message.content == "Hi there"

    offline.emulator.reply_text("one two three four five")
    stream = client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces) == "one two three four five"
    assert len([p for p in pieces if p]) > 1

    offline.emulator.reply_tool_call("get_weather", {"city": "Paris"})
    reply = client.chat.completions.create(model=MODEL, messages=HELLO, tools=[WEATHER_TOOL])
    (call,) = reply.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]

    parsed = client.chat.completions.parse(model=MODEL, messages=HELLO, response_format=CityFacts)
    facts = parsed.choices[0].message.parsed
    assert isinstance(facts, CityFacts)


async def run_examples_async(client: openai.AsyncOpenAI, offline: OfflineVertex) -> None:
    offline.emulator.reply_text("Hi there")
    reply = await client.chat.completions.create(model=MODEL, messages=HELLO)
    assert reply.choices[0].message.content == "Hi there"

    offline.emulator.reply_text("one two three")
    stream = await client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "one two three"

    offline.emulator.reply_tool_call("get_weather", {"city": "Oslo"})
    reply = await client.chat.completions.create(model=MODEL, messages=HELLO, tools=[WEATHER_TOOL])
    assert reply.choices[0].finish_reason == "tool_calls"

    parsed = await client.chat.completions.parse(
        model=MODEL,
        messages=HELLO,
        response_format=CityFacts,
    )
    assert isinstance(parsed.choices[0].message.parsed, CityFacts)


def chat_token_ids(offline: OfflineVertex) -> set[int]:
    return {r["token_id"] for r in offline.emulator.admin.requests()["chat"] if r["token_id"]}


# -- token_provider --------------------------------------------------------------------------------------


def test_provider_returns_the_shared_token_and_keeps_it_in_memory(
    vertex_env_offline: OfflineVertex,
) -> None:
    provider = vertex_env.token_provider()
    value = provider()
    assert value == os.environ["OPENAI_API_KEY"]  # the fixture's token, from the shared cache
    vertex_env_offline.clear_cache()
    assert provider() == value  # served from memory: no cache file, no new mint
    assert vertex_env_offline.emulator.token_requests == 1


@pytest.mark.slow
def test_openai_sdk_with_a_provider_rotates_short_lived_tokens_without_a_failed_request(
    vertex_env_offline: OfflineVertex,
) -> None:
    emulator = vertex_env_offline.emulator
    emulator.set_token_lifetime(2)
    vertex_env_offline.clear_cache()
    env = vertex_env.resolve()
    provider = vertex_env.token_provider(env)
    client = openai.OpenAI(base_url=env.base_url, api_key=provider, max_retries=0)

    run_examples(client, vertex_env_offline)
    first = provider.token()
    time.sleep(max(first.remaining() - 1.0, 0) + 0.05)  # past the margin (half of a 2 s life)
    run_examples(client, vertex_env_offline)

    assert provider.token().value != first.value
    assert len(chat_token_ids(vertex_env_offline)) >= 2
    assert emulator.chat_rejected == 0


@pytest.mark.slow
def test_openai_client_takes_debug_and_no_cache_as_vertex_env_options(
    vertex_env_offline: OfflineVertex, capfd: pytest.CaptureFixture[str]
) -> None:
    """debug= and no_cache= are vertex-env's (the option table's), not keyword arguments of openai.OpenAI."""
    vertex_env_offline.emulator.reply_text("hi")
    client = vertex_env.openai_client(debug=True, no_cache=True, max_retries=0)
    reply = client.chat.completions.create(
        model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "Hi"}]
    )
    assert reply.choices[0].message.content == "hi"
    err = capfd.readouterr().err
    assert "POST" in err and "/token" in err, (
        err
    )  # the --debug line of the mint, at the transport seam
    assert vertex_env_offline.emulator.token_requests == 2  # no_cache: a mint of its own


def test_provider_rejects_a_negative_min_ttl(vertex_env_offline: OfflineVertex) -> None:
    with pytest.raises(vertex_env.VertexEnvError, match="min TTL"):
        vertex_env.token_provider(min_ttl=-1)


def test_provider_takes_an_environment_or_options_not_both(
    vertex_env_offline: OfflineVertex,
) -> None:
    with pytest.raises(TypeError, match="not both"):
        vertex_env.token_provider(vertex_env.resolve(), location="europe-west4")


def test_provider_repr_never_shows_the_token(vertex_env_offline: OfflineVertex) -> None:
    provider = vertex_env.token_provider()
    value = provider()
    assert value not in repr(provider)
    assert value not in repr(vertex_env.async_token_provider())
    assert value not in repr(provider.token())


def test_concurrent_threads_on_a_cold_cache_make_one_token_request(
    vertex_env_offline: OfflineVertex,
) -> None:
    emulator = vertex_env_offline.emulator
    vertex_env_offline.clear_cache()
    emulator.fault("token", delay=0.3)  # a slow mint, so every thread arrives while it runs
    before = emulator.token_requests
    provider = vertex_env.token_provider()
    barrier = threading.Barrier(16)
    values: list[str] = []

    def call() -> None:
        barrier.wait()
        values.append(provider())

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(values) == 16
    assert len(set(values)) == 1
    assert emulator.token_requests - before == 1


@pytest.mark.slow
def test_forked_child_gets_a_token_while_a_parent_thread_holds_the_provider_lock(
    vertex_env_offline: OfflineVertex,
) -> None:
    vertex_env_offline.clear_cache()
    vertex_env_offline.emulator.fault("token", delay=1.0)
    provider = vertex_env.token_provider()
    minting = threading.Thread(target=provider)
    minting.start()
    deadline = time.monotonic() + 10
    while not provider._lock.locked() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert provider._lock.locked(), "the parent thread never started minting"

    with (
        warnings.catch_warnings()
    ):  # 3.12+: fork() of a multi-threaded process warns; that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: a copy of the parent with only this thread
        code = 3
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(20)
            code = 0 if provider().startswith(TOKEN_PREFIX) else 2
        finally:
            os._exit(code)

    minting.join(timeout=20)
    status = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child deadlocked calling the provider")
    assert os.waitstatus_to_exitcode(status) == 0


ANOTHER_PROCESS_RETRIES_A_401 = """
import httpx, vertex_env
env = vertex_env.resolve()
with httpx.Client(auth=vertex_env.httpx_auth(env)) as http:
    answer = http.post(env.base_url + "/chat/completions", json={"model": "google/gemini-2.5-flash", "messages": []})
    assert answer.status_code == 200, answer.status_code
"""


@pytest.mark.slow
def test_bare_provider_recovers_from_a_revoked_token_once_any_process_replaces_it(
    vertex_env_offline: OfflineVertex,
) -> None:
    """A plain `api_key=token_provider()` never sees the 401; a token another process put in the shared cache
    in place of the refused one must still reach it (one stat of the cache entry per call)."""
    env = vertex_env.resolve()
    provider = vertex_env.token_provider(env)
    client = openai.OpenAI(base_url=env.base_url, api_key=provider, max_retries=0)
    first = provider()
    vertex_env_offline.emulator.expire_tokens()  # revoked at "Google": the shared cache still holds it
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model=MODEL, messages=HELLO)

    subprocess.run([sys.executable, "-c", ANOTHER_PROCESS_RETRIES_A_401], check=True, timeout=60)

    vertex_env_offline.emulator.reply_text("back")
    reply = client.chat.completions.create(model=MODEL, messages=HELLO)
    assert reply.choices[0].message.content == "back"
    assert provider() != first


@pytest.mark.slow
def test_every_provider_adopts_a_token_another_process_wrote(
    vertex_env_offline: OfflineVertex,
) -> None:
    sync_provider = vertex_env.token_provider()
    async_provider = vertex_env.async_token_provider()
    first = sync_provider()
    assert asyncio.run(async_provider()) == first
    vertex_env_offline.clear_cache()
    assert sync_provider() == first  # a removed entry changes nothing: the held token is still good
    minted = subprocess.run(
        [sys.executable, "-m", "vertex_env", "token"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()  # minted and cached by that process
    assert minted != first
    assert sync_provider() == minted
    assert asyncio.run(async_provider()) == minted


# -- async_token_provider ------------------------------------------------------------------------------


@pytest.mark.slow
def test_async_provider_mints_without_blocking_the_event_loop(
    vertex_env_offline: OfflineVertex,
) -> None:
    vertex_env_offline.clear_cache()
    vertex_env_offline.emulator.fault("token", delay=1.0)
    provider = vertex_env.async_token_provider()

    async def scenario() -> tuple[int, str]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        value = await provider()
        during_mint = ticks
        stop.set()
        await task
        return during_mint, value

    ticks, value = asyncio.run(scenario())
    assert value.startswith(TOKEN_PREFIX)
    # A blocked loop would tick at most once; a free one ticks ~100 times in a 1 s mint.
    assert ticks >= 10


def test_concurrent_awaiters_in_one_loop_share_one_mint(
    vertex_env_offline: OfflineVertex,
) -> None:
    vertex_env_offline.clear_cache()
    vertex_env_offline.emulator.fault("token", delay=0.3)
    before = vertex_env_offline.emulator.token_requests
    provider = vertex_env.async_token_provider()

    async def scenario() -> list[str]:
        return list(await asyncio.gather(*(provider() for _ in range(20))))

    values = asyncio.run(scenario())
    assert len(set(values)) == 1
    assert vertex_env_offline.emulator.token_requests - before == 1


def test_a_cancelled_awaiter_does_not_cancel_the_shared_mint(
    vertex_env_offline: OfflineVertex,
) -> None:
    vertex_env_offline.clear_cache()
    vertex_env_offline.emulator.fault("token", delay=0.5)
    provider = vertex_env.async_token_provider()

    async def scenario() -> str:
        doomed = asyncio.create_task(provider())
        survivor = asyncio.create_task(provider())
        await asyncio.sleep(0.1)
        doomed.cancel()
        return await survivor

    assert asyncio.run(scenario()).startswith(TOKEN_PREFIX)


# -- openai_client / async_openai_client ---------------------------------------------------------------


def test_openai_client_runs_the_examples_across_a_token_expiry_without_a_failed_request(
    vertex_env_offline: OfflineVertex,
) -> None:
    client = vertex_env.openai_client(max_retries=0)
    run_examples(client, vertex_env_offline)
    before = chat_token_ids(vertex_env_offline)

    assert vertex_env_offline.expire_tokens() >= 1
    run_examples(
        client, vertex_env_offline
    )  # the first request gets 401, is retried with a new token

    assert chat_token_ids(vertex_env_offline) - before
    assert vertex_env_offline.emulator.chat_rejected == 1


def test_async_openai_client_runs_the_examples_across_a_token_expiry(
    vertex_env_offline: OfflineVertex,
) -> None:
    async def scenario() -> None:
        client = vertex_env.async_openai_client(max_retries=0)
        await run_examples_async(client, vertex_env_offline)
        vertex_env_offline.expire_tokens()
        await run_examples_async(client, vertex_env_offline)
        await client.close()

    asyncio.run(scenario())
    assert vertex_env_offline.emulator.chat_rejected == 1
    assert len(chat_token_ids(vertex_env_offline)) == 2


def test_openai_client_sends_vertex_options_to_vertex_and_the_rest_to_openai(
    vertex_env_offline: OfflineVertex,
) -> None:
    client = vertex_env.openai_client(project="other-project", location="europe-west4", timeout=7.0)
    assert "/projects/other-project/locations/europe-west4/" in str(client.base_url)
    assert client.timeout == 7.0


def test_openai_client_bills_the_quota_project(vertex_env_offline: OfflineVertex) -> None:
    client = vertex_env.openai_client(quota_project="billing-project")
    client.chat.completions.create(model=MODEL, messages=HELLO)
    (record,) = vertex_env_offline.emulator.admin.requests()["chat"]
    headers = {k.lower(): v for k, v in record["headers"].items()}
    assert headers["x-goog-user-project"] == "billing-project"


def test_openai_client_without_openai_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['openai'] = None\n"
        "import vertex_env\n"
        "try:\n"
        "    vertex_env.openai_client()\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'vertex-env[openai]'" in result.stdout
    assert "openai_client" in result.stdout


# -- httpx_auth ----------------------------------------------------------------------------------------


def chat(http: httpx.Client, base_url: str) -> httpx.Response:
    return http.post(f"{base_url}/chat/completions", json={"model": MODEL, "messages": HELLO})


def test_httpx_auth_retries_a_401_once_with_a_new_token(vertex_env_offline: OfflineVertex) -> None:
    emulator = vertex_env_offline.emulator
    with httpx.Client(auth=vertex_env.httpx_auth()) as http:
        assert chat(http, vertex_env_offline.base_url).status_code == 200
        emulator.expire_tokens()  # at the emulator only: the cache still serves the dead token
        tokens_before = emulator.token_requests
        response = chat(http, vertex_env_offline.base_url)

    assert response.status_code == 200
    assert emulator.chat_rejected == 1
    assert emulator.token_requests == tokens_before + 1


def test_httpx_auth_gives_up_after_one_retry(vertex_env_offline: OfflineVertex) -> None:
    vertex_env_offline.emulator.reply_error(401, repeat=True)
    with httpx.Client(auth=vertex_env.httpx_auth()) as http:
        response = chat(http, vertex_env_offline.base_url)
    assert response.status_code == 401
    assert vertex_env_offline.emulator.chat_requests == 2


def test_a_token_refused_twice_is_dropped_from_the_shared_cache(
    vertex_env_offline: OfflineVertex,
) -> None:
    vertex_env_offline.emulator.reply_error(401, repeat=True)
    with httpx.Client(auth=vertex_env.httpx_auth()) as http:
        assert chat(http, vertex_env_offline.base_url).status_code == 401
    # the next export or run mints instead of handing out the token Google refused
    assert vertex_env.resolve().token_source.cached() is None

    async def scenario() -> int:
        async with httpx.AsyncClient(auth=vertex_env.httpx_auth()) as client:
            url = f"{vertex_env_offline.base_url}/chat/completions"
            answer = await client.post(url, json={"model": MODEL, "messages": HELLO})
            return answer.status_code

    assert asyncio.run(scenario()) == 401
    assert vertex_env.resolve().token_source.cached() is None


def test_async_httpx_auth_retries_a_401_with_a_new_token(
    vertex_env_offline: OfflineVertex,
) -> None:
    emulator = vertex_env_offline.emulator

    async def scenario() -> list[int]:
        async with httpx.AsyncClient(auth=vertex_env.httpx_auth()) as http:
            url = f"{vertex_env_offline.base_url}/chat/completions"
            body = {"model": MODEL, "messages": HELLO}
            first = await http.post(url, json=body)
            emulator.expire_tokens()
            second = await http.post(url, json=body)
            return [first.status_code, second.status_code]

    assert asyncio.run(scenario()) == [200, 200]
    assert emulator.chat_rejected == 1


# -- import cost -------------------------------------------------------------------------------------------


HEAVY = ("openai", "httpx", "httpx2", "aiohttp", "google.auth", "requests")


def imported_heavy_modules(code: str) -> list[str]:
    probe = (
        f"{code}\nimport sys\n"
        f"print(sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in {HEAVY!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = json.loads(result.stdout.replace("'", '"'))
    return loaded


def test_import_vertex_env_stays_cheap() -> None:
    assert imported_heavy_modules("import vertex_env") == []


def test_touching_the_api_imports_neither_openai_nor_httpx() -> None:
    assert imported_heavy_modules("import vertex_env; vertex_env.token_provider") == []


def test_every_public_name_resolves() -> None:
    for name in vertex_env.__all__:
        assert getattr(vertex_env, name) is not None

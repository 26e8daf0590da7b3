"""The proxy's event loop: uvloop's when the optional extra `vertex-env[speed]` is installed, asyncio's otherwise."""

from __future__ import annotations

import asyncio
import sys

import openai
import pytest

from vertex_env.emulator import EmulatorServer
from vertex_env.environment import resolve
from vertex_env.proxy.server import BackgroundProxy, new_event_loop, run_loop


def _is_uvloop(loop: asyncio.AbstractEventLoop) -> bool:
    return type(loop).__module__.split(".")[0] == "uvloop"


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_without_uvloop_the_proxy_runs_on_asyncios_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        sys.modules, "uvloop", None
    )  # importing it fails, as when it is not installed
    loop = new_event_loop()
    try:
        assert isinstance(loop, asyncio.BaseEventLoop)
        assert not _is_uvloop(loop)
    finally:
        loop.close()
    assert not _is_uvloop(run_loop(_running_loop()))


def test_with_uvloop_serve_and_run_proxy_use_it(emu: EmulatorServer) -> None:
    pytest.importorskip(
        "uvloop", reason="uvloop is not installed (optional extra vertex-env[speed])"
    )
    loop = new_event_loop()
    try:
        assert _is_uvloop(loop)
    finally:
        loop.close()
    assert _is_uvloop(run_loop(_running_loop()))  # what `vertex-env serve` runs on
    with BackgroundProxy.for_environment(resolve()) as proxy:  # what `run --proxy` runs on
        thread = proxy._thread
        assert thread is not None and thread._loop is not None and _is_uvloop(thread._loop)
        client = openai.OpenAI(
            base_url=proxy.base_url,
            api_key=proxy.key,
            max_retries=0,
            http_client=openai.DefaultHttpxClient(trust_env=False),
        )
        answer = client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.choices[0].message.content
        chunks = client.chat.completions.create(
            model="google/gemini-2.5-flash",
            messages=[{"role": "user", "content": "one two three"}],
            stream=True,
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert proxy.stats.forwarded == 2

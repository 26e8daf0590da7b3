"""The loopback proxy's way to a non-loopback Vertex: HTTPS_PROXY/HTTP_PROXY as the environment says, read once at
start (aiohttp's trust_env re-reads the environment and ~/.netrc in a thread for every request), and never a
~/.netrc login on the Vertex request itself (its Authorization is the Google token)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_proxy import BASE_PATH, post

from vertex_env.emulator import EmulatorServer
from vertex_env.environment import resolve
from vertex_env.proxy.server import BackgroundProxy, LoopbackProxy

#: A Vertex host that is not loopback (never resolved: the forward proxy, the emulator here, is asked for it).
FAR_UPSTREAM = "http://vertex.example" + BASE_PATH


def far_proxy(monkeypatch: pytest.MonkeyPatch, emu: EmulatorServer) -> BackgroundProxy:
    """A proxy to FAR_UPSTREAM, reached through HTTP_PROXY (the emulator answers absolute-form requests)."""
    monkeypatch.setenv("HTTP_PROXY", f"http://{emu.host_port}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    env = resolve()
    return BackgroundProxy(
        LoopbackProxy(upstream=FAR_UPSTREAM, token_source=env.token_source, min_ttl=300)
    )


def chat(proxy: BackgroundProxy) -> tuple[int, bytes]:
    body = json.dumps(
        {"model": "google/gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}
    )
    status, _, answer = post(
        proxy.base_url + "/chat/completions",
        body.encode(),
        {"Authorization": f"Bearer {proxy.key}", "Content-Type": "application/json"},
    )
    return status, answer


def test_a_far_upstream_is_reached_through_the_environment_proxy(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with far_proxy(monkeypatch, emu) as proxy:
        status, answer = chat(proxy)
    assert status == 200, answer
    assert json.loads(answer)["object"] == "chat.completion"
    assert emu.admin.stats()["requests"]["chat"] == 1


def test_a_default_netrc_entry_does_not_break_the_proxy(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`default login … password …` in ~/.netrc matches every host: aiohttp's trust_env would add it as
    Basic auth beside our Authorization header and refuse the request (a 500 for every call)."""
    netrc = Path(os.environ["HOME"]) / ".netrc"
    netrc.write_text("default login someone password not-for-vertex\n")
    netrc.chmod(0o600)
    with far_proxy(monkeypatch, emu) as proxy:
        status, answer = chat(proxy)
    assert status == 200, answer
    assert b"not-for-vertex" not in answer

"""`use vertex` in a real direnv: the library from `vertex-env hook direnv`, direnv's own allow/exec/export.

direnv's config and data dirs live under the isolated HOME/XDG dirs from conftest; every subprocess gets
os.environ (with the venv's bin first on PATH, so direnv's bash finds `vertex-env`).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_tool

from vertex_env.emulator import EmulatorServer, write_authorized_user
from vertex_env.environment import resolve
from vertex_env.system.loopback import opener_for

BIN = Path(sys.executable).parent


@pytest.fixture
def project(
    isolated_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, EmulatorServer]]:
    require_tool("direnv")
    require_tool("bash")
    with EmulatorServer() as emu:
        monkeypatch.setenv("PATH", f"{BIN}:{os.environ.get('PATH', '')}")
        monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", emu.host_port)
        monkeypatch.setenv("VERTEX_ENV_PROJECT", "test-project")
        adc = write_authorized_user(isolated_machine / "adc.json")
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
        monkeypatch.setenv("DIRENV_LOG_FORMAT", "direnv: %s")
        lib = Path(os.environ["XDG_CONFIG_HOME"]) / "direnv" / "lib"
        lib.mkdir(parents=True)
        with (lib / "vertex-env.sh").open("w") as fh:  # the documented installation
            subprocess.run([BIN / "vertex-env", "hook", "direnv"], stdout=fh, check=True)
        root = isolated_machine / "project"
        root.mkdir()
        yield root, emu


def envrc(root: Path, text: str) -> None:
    (root / ".envrc").write_text(text)
    subprocess.run(["direnv", "allow", str(root)], check=True, env=dict(os.environ))


def direnv_exec(root: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["direnv", "exec", str(root), "bash", "-c", script],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )


def chat(base_url: str, token: str) -> int:
    request = urllib.request.Request(
        f"{base_url}/chat/completions",
        data=json.dumps(
            {"model": "google/gemini-2.0-flash", "messages": [{"role": "user", "content": "hi"}]}
        ).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    opener = opener_for(base_url)
    with opener.open(request, timeout=10) as response:
        return int(response.status)


def watches(exported: dict[str, str]) -> list[str]:
    """The files direnv watches (DIRENV_WATCHES: base64url of zlib-compressed JSON)."""
    raw = zlib.decompress(base64.urlsafe_b64decode(exported["DIRENV_WATCHES"]))
    return [item["Path"] for item in json.loads(raw)]


@pytest.mark.slow
def test_use_vertex_gives_a_token_the_emulator_accepts(
    project: tuple[Path, EmulatorServer],
) -> None:
    root, emu = project
    envrc(root, "use vertex\n")
    result = direnv_exec(root, 'printf "%s\\n%s\\n" "$OPENAI_API_KEY" "$OPENAI_BASE_URL"')
    assert result.returncode == 0, result.stderr
    token, base_url = result.stdout.splitlines()
    assert base_url.startswith(emu.url)
    assert chat(base_url, token) == 200
    assert "ya29" not in result.stderr


@pytest.mark.slow
def test_use_vertex_passes_export_options_and_watches_the_profile_token_file(
    project: tuple[Path, EmulatorServer],
) -> None:
    root, _emu = project
    envrc(root, "use vertex --google --format=sh --legacy\n")
    result = subprocess.run(
        ["direnv", "export", "json"],
        capture_output=True,
        text=True,
        cwd=root,
        env=dict(os.environ),
        check=True,
    )
    exported = json.loads(result.stdout)
    assert exported["GOOGLE_CLOUD_PROJECT"] == "test-project"
    assert exported["OPENAI_API_BASE"] == exported["OPENAI_BASE_URL"]
    source = resolve().token_source
    assert str(source.cache.path_for(source.cache_key)) in watches(exported)


def test_a_failed_export_logs_an_error_and_sets_nothing(
    project: tuple[Path, EmulatorServer],
) -> None:
    root, _emu = project
    envrc(root, "use vertex --credentials /nonexistent/adc.json\nexport AFTER=yes\n")
    result = subprocess.run(
        ["direnv", "export", "json"],
        capture_output=True,
        text=True,
        cwd=root,
        env=dict(os.environ),
    )
    assert "could not export the Vertex AI variables" in result.stderr
    exported = json.loads(result.stdout or "{}")
    assert "OPENAI_API_KEY" not in exported and "VERTEX_ENV_EXPIRES_AT" not in exported
    assert "OPENAI_BASE_URL" not in exported


@pytest.mark.slow
def test_direnv_reloads_with_the_daemon_refreshed_token_at_the_next_prompt(
    project: tuple[Path, EmulatorServer],
) -> None:
    """A bash session driven like direnv's hook (`eval "$(direnv export bash)"` before each prompt) while
    `vertex-env daemon` keeps 6-second tokens fresh: the session's token changes with no user action, and
    every token it sees was minted by the daemon (direnv's `use vertex` is served from the cache)."""
    root, emu = project
    emu.admin.configure(expires_in=6)
    envrc(root, "use vertex\n")
    daemon = subprocess.Popen(
        [BIN / "vertex-env", "daemon"], stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        source = resolve().token_source
        cache_file = source.cache.path_for(source.cache_key)
        deadline = time.monotonic() + 15
        while not cache_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        prompts = "\n".join(
            ['eval "$(direnv export bash)"; echo "token=$OPENAI_API_KEY"; sleep 0.5'] * 12
        )
        session = subprocess.run(
            ["bash", "--norc", "--noprofile"],
            input=f"cd {root}\n{prompts}\n",
            capture_output=True,
            text=True,
            env=dict(os.environ),
            timeout=60,
        )
    finally:
        daemon.terminate()
        _, log = daemon.communicate(timeout=10)
    tokens = [line[len("token=") :] for line in session.stdout.splitlines()]
    assert all(tokens), session.stderr
    distinct = list(dict.fromkeys(tokens))
    assert len(distinct) >= 2, f"no reload after the daemon's refresh: {session.stderr}"
    assert session.stderr.count("direnv: loading") >= 2
    assert "no daemon keeps this token fresh" not in session.stderr
    assert emu.admin.stats()["tokens_issued"] == log.count("minted token"), log
    latest = distinct[-1]
    assert emu.state.lookup_token(latest) is not None


def test_without_a_daemon_the_log_says_the_variables_go_stale(
    project: tuple[Path, EmulatorServer],
) -> None:
    root, _emu = project
    envrc(root, "use vertex\n")
    result = direnv_exec(root, 'echo "$VERTEX_ENV_EXPIRES_AT"')
    assert result.returncode == 0, result.stderr
    expires = time.strftime("%H:%M", time.localtime(int(result.stdout)))
    assert f"no daemon keeps this token fresh; it goes stale at {expires}" in result.stderr


def test_the_library_runs_the_vertex_env_that_printed_it_when_path_lacks_it(
    project: tuple[Path, EmulatorServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _emu = project
    direnv = require_tool("direnv")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    envrc(root, "use vertex\n")
    result = subprocess.run(
        [direnv, "exec", str(root), "bash", "-c", 'echo "$OPENAI_API_KEY"'],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ya29.emu-")

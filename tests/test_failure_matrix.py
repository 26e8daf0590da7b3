"""Every credential type × every token-service fault → the documented exit code and one readable line.

Two parametrized grids, both against the emulator with the real google-auth:
- the classification grid: each credential type the emulator serves (through the fault's target: the OAuth2
  token endpoint, STS or IAM) × 5xx, 429, invalid_grant, invalid_rapt and a timeout, read from `vertex-env token`;
- the surface grid: the workload identity types (STS, the path that crashed with google-auth's OAuthError) × the
  same faults × every surface: token, export, status, daemon --once, run --proxy, the proxy `serve` runs (an
  OpenAI-shaped 502) and the Python API. Each surface renders the same VertexEnvError, so the grid proves the
  rendering; the classification grid proves the mapping for every type.
The metadata server is left out: google-auth itself retries its 5xx with 1-8 s back-off (about 15 s a cell).
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import vertex_env
from vertex_env.cli.group import main
from vertex_env.core import transport
from vertex_env.emulator import (
    EmulatorServer,
    write_authorized_user,
    write_external_account,
    write_external_account_authorized_user,
    write_impersonated_service_account,
    write_service_account,
)
from vertex_env.environment import resolve
from vertex_env.errors import VertexEnvError
from vertex_env.proxy.server import BackgroundProxy
from vertex_env.system.loopback import opener_for

SA = "target-sa@test-project.iam.gserviceaccount.com"

#: fault name → (emulator fault effect, exit code, phrase of the one line)
FAULTS: dict[str, tuple[dict[str, Any], int, str]] = {
    "5xx": ({"status": 503}, 8, "kept failing (HTTP 503)"),
    "429": ({"status": 429}, 8, "kept failing (HTTP 429)"),
    "invalid_grant": ({"error": "invalid_grant"}, 7, "revoked or has expired (invalid_grant)"),
    "invalid_rapt": ({"error": "invalid_rapt"}, 6, "reauthenticate (invalid_rapt)"),
    "timeout": ({"delay": 3.0}, 8, "could not reach the emulator at"),
}
#: credential type → the emulator kinds whose faults it meets (IAM only for impersonation).
CREDENTIALS: dict[str, tuple[str, ...]] = {
    "authorized_user": ("token",),
    "service_account": ("token",),
    "external_account": ("token",),
    "external_account_impersonated": ("token", "iam"),
    "external_account_authorized_user": ("token",),
    "impersonated_service_account": ("token", "iam"),
}
#: OAuth2 grant errors are not something IAM answers: only transport and server faults there.
_IAM_FAULTS = ("5xx", "429", "timeout")
_SECRETS = ("emu-secret-", "1//", "ya29.")


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer() as running:
        yield running


@pytest.fixture
def emu(
    server: EmulatorServer, monkeypatch: pytest.MonkeyPatch, isolated_machine: Path
) -> Iterator[EmulatorServer]:
    server.state.reset()
    monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", server.host_port)
    monkeypatch.setenv("VERTEX_ENV_PROJECT", "test-project")
    # A timeout fault must not cost google-auth's 120 s or our 15 s per attempt.
    monkeypatch.setattr(transport, "DEFAULT_TIMEOUT", 0.3)
    yield server
    server.state.reset()


def write_credential(kind: str, folder: Path, emu: EmulatorServer) -> Path:
    path = folder / f"{kind}.json"
    if kind == "authorized_user":
        return write_authorized_user(path)
    if kind == "service_account":
        return write_service_account(path, register_with=emu.state)
    if kind == "external_account":
        return write_external_account(path, subject_token_file=folder / "oidc.jwt")
    if kind == "external_account_impersonated":
        return write_external_account(path, subject_token_file=folder / "oidc.jwt", impersonate=SA)
    if kind == "external_account_authorized_user":
        return write_external_account_authorized_user(path)
    assert kind == "impersonated_service_account"
    return write_impersonated_service_account(path, target=SA)


def use_credential(
    kind: str, folder: Path, emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_credential(kind, folder, emu)))


def inject(emu: EmulatorServer, target: str, fault: str) -> None:
    effect = FAULTS[fault][0]
    emu.state.add_faults({"target": target, "count": 20, **effect})


def assert_one_clean_line(err: str, phrase: str) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert lines[0].startswith("vertex-env: error: "), err
    assert phrase in lines[0], err
    for secret in _SECRETS:
        assert secret not in err, err


def _grid() -> list[Any]:
    cells = []
    for kind, targets in CREDENTIALS.items():
        for target in targets:
            for fault in FAULTS:
                if target == "iam" and fault not in _IAM_FAULTS:
                    continue
                cells.append(pytest.param(kind, target, fault, id=f"{kind}-{target}-{fault}"))
    return cells


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "target", "fault"), _grid())
def test_every_credential_type_and_fault_gives_its_exit_code_and_one_line(
    kind: str,
    target: str,
    fault: str,
    emu: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_credential(kind, tmp_path, emu, monkeypatch)
    inject(emu, target, fault)
    _, code, phrase = FAULTS[fault]
    assert main(["token", "--no-cache"]) == code
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_clean_line(err, phrase)


# -- every surface -----------------------------------------------------------------------------------------


def _surface_token(capsys: pytest.CaptureFixture[str], code: int, phrase: str, _: Path) -> None:
    assert main(["token", "--no-cache"]) == code
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_clean_line(err, phrase)


def _surface_export(capsys: pytest.CaptureFixture[str], code: int, phrase: str, _: Path) -> None:
    assert main(["export", "--no-cache"]) == code
    out, err = capsys.readouterr()
    assert out.strip() == "false;"  # eval "$(vertex-env export)" fails with it
    assert_one_clean_line(err, phrase)


def _surface_status(capsys: pytest.CaptureFixture[str], code: int, phrase: str, _: Path) -> None:
    assert main(["status", "--no-cache"]) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    (line,) = [line for line in out.splitlines() if line.startswith("token:")]
    assert "error: " in line and phrase in line, out
    assert main(["status", "--no-cache", "--json"]) == code
    report = json.loads(capsys.readouterr().out)
    assert phrase in report["token"]["error"]


def _surface_daemon_once(
    capsys: pytest.CaptureFixture[str], code: int, phrase: str, folder: Path
) -> None:
    target = folder / ".env"
    assert main(["daemon", "--once", "--write", str(target)]) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert phrase in err, err
    assert not target.exists() or "ya29." not in target.read_text()


def _surface_run_proxy(
    capsys: pytest.CaptureFixture[str], code: int, phrase: str, folder: Path
) -> None:
    marker = folder / "child-ran"
    argv = ["run", "--proxy", "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    assert main(argv) == code
    _, err = capsys.readouterr()
    assert_one_clean_line(err, phrase)
    assert not marker.exists()  # the child never starts without a token


def _surface_python_api(
    capsys: pytest.CaptureFixture[str], code: int, phrase: str, _: Path
) -> None:
    provider = vertex_env.token_provider(use_cache=False)
    with pytest.raises(VertexEnvError) as caught:
        provider()
    assert caught.value.exit_code == code
    assert phrase in str(caught.value)
    assert "\n" not in str(caught.value)


SURFACES = {
    "token": _surface_token,
    "export": _surface_export,
    "status": _surface_status,
    "daemon-once": _surface_daemon_once,
    "run-proxy": _surface_run_proxy,
    "python-api": _surface_python_api,
}
_STS_KINDS = ("external_account", "external_account_authorized_user")


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("surface", list(SURFACES))
@pytest.mark.parametrize("kind", _STS_KINDS)
def test_every_surface_reports_a_token_service_fault_cleanly(
    kind: str,
    surface: str,
    fault: str,
    emu: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_credential(kind, tmp_path, emu, monkeypatch)
    inject(emu, "token", fault)
    _, code, phrase = FAULTS[fault]
    SURFACES[surface](capsys, code, phrase, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("kind", _STS_KINDS)
def test_the_proxy_answers_an_openai_shaped_502_when_no_token_can_be_had(
    kind: str,
    fault: str,
    emu: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What `serve` and `run --proxy` do once running: the token dies, the next mint fails → a 502 the OpenAI
    SDK reads as an APIError with Google's reason, never a bare 500 or a traceback."""
    use_credential(kind, tmp_path, emu, monkeypatch)
    _, _, phrase = FAULTS[fault]
    with BackgroundProxy.for_environment(resolve(use_cache=False)) as proxy:
        emu.state.expire_all()
        inject(emu, "token", fault)
        request = urllib.request.Request(
            proxy.base_url + "/chat/completions",
            data=b'{"model":"google/gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}',
            headers={"Authorization": f"Bearer {proxy.key}", "Content-Type": "application/json"},
        )
        opener = opener_for(proxy.base_url)
        with pytest.raises(urllib.error.HTTPError) as caught:
            opener.open(request, timeout=30)
        with caught.value as answer:
            status, body = answer.code, json.loads(answer.read())
    assert status == 502
    assert body["error"]["code"] == "token_error"
    assert phrase in body["error"]["message"]
    assert "Traceback" not in body["error"]["message"]


@pytest.mark.slow
def test_serve_with_no_token_at_start_exits_with_the_code_and_one_line(
    emu: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`vertex-env serve` fetches a token before it binds: an STS 503 then is exit 8, one line, no traceback."""
    import os
    import subprocess

    use_credential("external_account", tmp_path, emu, monkeypatch)
    inject(emu, "token", "5xx")
    result = subprocess.run(
        [sys.executable, "-m", "vertex_env", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        check=False,
    )
    assert result.returncode == 8, result.stderr
    # serve may say first that it has no token (its readiness log line); the error itself is one line.
    *_, last = result.stderr.strip().splitlines()
    assert_one_clean_line(last, "kept failing (HTTP 503)")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""

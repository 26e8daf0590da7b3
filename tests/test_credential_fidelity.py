"""Credentials as google-auth reads them: local problems said as local (exit 5, google-auth's reason), the ADC
file's quota_project_id used as the quota project, another universe refused, error text readable and redacted,
no secret in a repr, and `run` replacing every OPENAI_* name it knows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import vertex_env
from vertex_env.cli.group import main
from vertex_env.core.credentials import locate, mint
from vertex_env.emulator import (
    EmulatorServer,
    write_authorized_user,
    write_external_account,
    write_impersonated_service_account,
)
from vertex_env.emulator.credfiles import authorized_user_info
from vertex_env.environment import resolve
from vertex_env.proxy.server import BackgroundProxy
from vertex_env.system.files import cache_dir

_AUDIENCE = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q"
_STS = "https://sts.googleapis.com/v1/token"
_AWS_TYPE = "urn:ietf:params:aws:token-type:aws4_request"
_AWS_VERIFY = "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch, isolated_machine: Path) -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", server.host_port)
        yield server


def adc(isolated_machine: Path) -> Path:
    return isolated_machine / ".config" / "gcloud" / "application_default_credentials.json"


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("vertex-env: error: ")
    return line


# -- local problems are local: exit 5 with google-auth's own reason ------------------------------------------


def _external(subject_token_type: str, source: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "external_account",
        "audience": _AUDIENCE,
        "subject_token_type": subject_token_type,
        "token_url": _STS,
        "credential_source": source,
    }


LOCAL_PROBLEMS = {
    "executable-not-allowed": (
        _external(
            "urn:ietf:params:oauth:token-type:jwt",
            {"executable": {"command": "/bin/echo token", "timeout_millis": 5000}},
        ),
        "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES",
    ),
    "aws-without-aws": (
        _external(
            _AWS_TYPE, {"environment_id": "aws1", "regional_cred_verification_url": _AWS_VERIFY}
        ),
        "Unable to determine AWS region",
    ),
    "aws-metadata-unreachable": (
        _external(
            _AWS_TYPE,
            {
                "environment_id": "aws1",
                "region_url": "http://127.0.0.1:9/latest/meta-data/placement/availability-zone",
                "url": "http://127.0.0.1:9/latest/meta-data/iam/security-credentials",
                "regional_cred_verification_url": _AWS_VERIFY,
            },
        ),
        "token source 127.0.0.1 did not answer (connection refused)",
    ),
    "x509-certificate": (
        _external(
            "urn:ietf:params:oauth:token-type:mtls",
            {"certificate": {"use_default_certificate_config": True}},
        ),
        "Workload certificate configuration could not be found",
    ),
    "subject-token-file-missing": (
        _external("urn:ietf:params:oauth:token-type:jwt", {"file": "/nonexistent/oidc.jwt"}),
        "File '/nonexistent/oidc.jwt' was not found",
    ),
}


@pytest.mark.parametrize("case", list(LOCAL_PROBLEMS))
def test_a_credential_google_auth_cannot_use_is_a_local_problem_with_its_reason(
    case: str,
    emu: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    info, reason = LOCAL_PROBLEMS[case]
    path = tmp_path / "wif.json"
    path.write_text(json.dumps(info))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.setenv("VERTEX_ENV_PROJECT", "test-project")
    assert main(["token", "--no-cache"]) == 5
    line = one_error_line(capsys.readouterr().err)
    assert reason in line and str(path) in line, line
    for misleading in ("captive portal", "Google refused", "kept failing"):
        assert misleading not in line
    assert emu.state.stats()["requests"]["token"] == 0  # Google was never asked


def use_workload_identity(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ADC is an external_account (workload identity federation) file: its tokens come from STS."""
    write_external_account(folder / "wif.json", subject_token_file=folder / "t")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(folder / "wif.json"))
    monkeypatch.setenv("VERTEX_ENV_PROJECT", "test-project")


def test_a_body_that_is_not_a_token_response_is_still_a_captive_portal(
    emu: EmulatorServer,
    isolated_machine: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_workload_identity(isolated_machine, monkeypatch)
    emu.state.add_faults({"target": "token", "non_json": True})
    assert main(["token", "--no-cache"]) == 8
    assert "captive portal" in one_error_line(capsys.readouterr().err)


def test_a_credential_from_another_universe_in_an_impersonation_source_is_refused(
    emu: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = {**authorized_user_info(), "universe_domain": "example-tpc.goog"}
    path = write_impersonated_service_account(
        tmp_path / "imp.json", target="t@p.iam", source=source
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.setenv("VERTEX_ENV_PROJECT", "test-project")
    assert main(["export", "--no-cache"]) == 5
    out, err = capsys.readouterr()
    assert out.strip() == "false;"
    assert "universe 'example-tpc.goog'" in one_error_line(err)
    assert sum(emu.state.stats()["requests"].values()) == 0


# -- readable, redacted error text ---------------------------------------------------------------------------


def test_sts_error_is_one_line_with_googles_error_and_description_not_a_tuple(
    emu: EmulatorServer,
    isolated_machine: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_workload_identity(isolated_machine, monkeypatch)
    body = {"error": "invalid_target", "error_description": "The target service is invalid."}
    emu.state.add_faults({"target": "token", "status": 400, "body": body})
    assert main(["token", "--no-cache"]) == 12
    line = one_error_line(capsys.readouterr().err)
    assert "(HTTP 400): invalid_target: The target service is invalid." in line
    for raw in ("('", "{'error'", '{"error"', "Error code"):
        assert raw not in line


def test_an_unreachable_google_is_one_readable_line_not_a_urllib3_report(
    isolated_machine: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_authorized_user(adc(isolated_machine))
    monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", "127.0.0.1:9")  # nothing listens on discard
    monkeypatch.setenv("VERTEX_ENV_PROJECT", "test-project")
    assert main(["token", "--no-cache"]) == 8
    line = one_error_line(capsys.readouterr().err)
    assert (
        "could not reach the emulator at 127.0.0.1:9 (standing in for oauth2.googleapis.com)"
        in line
    )
    assert "connection refused" in line
    for raw in ("HTTPConnectionPool", "Max retries exceeded", "Caused by", "NewConnectionError"):
        assert raw not in line


def test_a_client_secret_echoed_by_the_token_endpoint_is_redacted_everywhere(
    emu: EmulatorServer,
    isolated_machine: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    info = authorized_user_info()
    adc(isolated_machine).parent.mkdir(parents=True)
    adc(isolated_machine).write_text(json.dumps(info))
    monkeypatch.setenv("VERTEX_ENV_PROJECT", "test-project")
    secret = info["client_secret"]
    echoed = (
        f"Bad request: grant_type=refresh_token&client_id={info['client_id']}"
        f"&client_secret={secret}&refresh_token={info['refresh_token']}"
    )
    body = {"error": "invalid_client", "error_description": echoed}
    emu.state.add_faults({"target": "token", "status": 401, "body": body})
    assert main(["token"]) == 12
    line = one_error_line(capsys.readouterr().err)
    assert "invalid_client" in line and "client_secret=[redacted]" in line
    stored = "".join(
        p.read_text() for p in cache_dir(dict(os.environ)).glob("*.failed.json")
    )  # what waiting processes and the daemon's state read
    assert '"class": "AuthError"' in stored  # a record exists; it holds the class, never text
    for value in (secret, info["refresh_token"]):
        assert value not in line and value not in stored


def test_no_secret_in_the_repr_of_minted_credential_source_or_environment(
    emu: EmulatorServer, isolated_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = authorized_user_info()
    adc(isolated_machine).parent.mkdir(parents=True)
    adc(isolated_machine).write_text(json.dumps(info))
    monkeypatch.setenv("VERTEX_ENV_PROJECT", "test-project")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent-secret-value")
    env = resolve()
    source = locate(env.profile)
    minted = mint(env.profile, source)
    shown = repr(minted) + repr(source) + repr(env) + repr(env.profile)
    for secret in (minted.value, info["refresh_token"], info["client_secret"], "sk-parent-secret"):
        assert secret not in shown
    assert "expires_at" in repr(minted) and "authorized_user" in repr(minted)
    assert str(source.path) in repr(source)


# -- the ADC file's quota_project_id is the quota project, never the URL project -----------------------------


@pytest.mark.slow
def test_adc_quota_project_id_is_the_quota_project_not_the_url_project(
    emu: EmulatorServer, isolated_machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_authorized_user(adc(isolated_machine), quota_project_id="billing-proj")
    assert main(["status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["values"]["project"]["value"] is None  # not a project source
    assert report["values"]["quota_project"]["value"] == "billing-proj"
    assert "quota_project_id" in report["values"]["quota_project"]["source"]
    assert not any("quota project" in w for w in report["warnings"])
    # google-auth's order: an explicit quota project wins over the file's.
    assert main(["status", "--json", "--quota-project", "flag-proj"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["values"]["quota_project"] == {
        "value": "flag-proj",
        "source": "flag --quota-project",
    }


def _chat_header(emu: EmulatorServer, name: str) -> str | None:
    record = emu.admin.requests(kind="chat")["chat"][-1]
    return next((v for k, v in record["headers"].items() if k.lower() == name), None)


@pytest.mark.slow
def test_adc_quota_project_id_is_sent_by_the_proxy_and_the_python_api(
    emu: EmulatorServer, isolated_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_authorized_user(adc(isolated_machine), quota_project_id="billing-proj")
    monkeypatch.setenv("VERTEX_ENV_PROJECT", "test-project")
    hello: Any = [{"role": "user", "content": "hi"}]
    with (
        BackgroundProxy.for_environment(resolve()) as proxy,
        openai.OpenAI(
            base_url=proxy.base_url,
            api_key=proxy.key,
            max_retries=0,
            http_client=openai.DefaultHttpxClient(trust_env=False),
        ) as client,
    ):
        client.chat.completions.create(model="google/gemini-2.5-flash", messages=hello)
    assert _chat_header(emu, "x-goog-user-project") == "billing-proj"
    emu.state.reset()
    with vertex_env.openai_client(max_retries=0) as client:
        client.chat.completions.create(model="google/gemini-2.5-flash", messages=hello)
    assert _chat_header(emu, "x-goog-user-project") == "billing-proj"


# -- plain run: every OPENAI_* name it knows is ours in the child ---------------------------------------------


@pytest.mark.slow
def test_plain_run_replaces_a_stale_openai_api_base_from_the_parent(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    write_authorized_user(adc(isolated_machine))
    env = {
        **os.environ,
        "VERTEX_ENV_PROJECT": "test-project",
        "OPENAI_API_BASE": "https://api.openai.com/v1",  # langchain-openai reads this before OPENAI_BASE_URL
        "OPENAI_BASE_URL": "https://stale.example/v1",
        "OPENAI_API_KEY": "sk-stale",
    }
    script = (
        "import json, os; print(json.dumps({k: os.environ.get(k) for k in "
        "('OPENAI_API_BASE', 'OPENAI_BASE_URL', 'OPENAI_API_KEY')}))"
    )
    result = subprocess.run(
        [sys.executable, "-m", "vertex_env", "run", "--", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    expected = resolve(environ=env).base_url
    assert seen["OPENAI_BASE_URL"] == expected
    assert seen["OPENAI_API_BASE"] == expected
    assert seen["OPENAI_API_KEY"] != "sk-stale"

"""The emulator against the real clients: google-auth for every credential type, and the openai SDK.

google-auth reaches the emulator only through vertex-env's transport seam (VERTEX_ENV_EMULATOR_HOST), or,
for the metadata server, through google-auth's own GCE_METADATA_HOST in a subprocess. Nothing is mocked.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import google.auth
import google.auth.exceptions
import google.auth.external_account_authorized_user
import google.auth.identity_pool
import google.auth.impersonated_credentials
import google.oauth2.credentials
import google.oauth2.service_account
import openai
import pytest
from conftest import http

from vertex_env.core.transport import make_request
from vertex_env.emulator import (
    TOKEN_PREFIX,
    EmulatorAdminError,
    EmulatorServer,
    authorized_user_info,
    write_authorized_user,
    write_external_account,
    write_external_account_authorized_user,
    write_impersonated_service_account,
    write_service_account,
)

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
TARGET_SA = "target@emulated-project.iam.gserviceaccount.com"


def chat_status(bare_emu: EmulatorServer, token: str | None) -> int:
    """Status of a minimal chat completion made with `token` (200 means the emulator accepts it)."""
    assert token, "the credentials hold no token"
    status, _, _ = http(
        bare_emu.chat_base_url() + "/chat/completions",
        method="POST",
        body=json.dumps(
            {
                "model": "google/gemini-2.0-flash-001",
                "messages": [{"role": "user", "content": "hi"}],
            }
        ).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    return status


def openai_client(bare_emu: EmulatorServer, token: str | None) -> openai.OpenAI:
    assert token, "the credentials hold no token"
    return openai.OpenAI(base_url=bare_emu.chat_base_url(project="p"), api_key=token, max_retries=0)


def refreshed_user(tmp_path: Path) -> google.oauth2.credentials.Credentials:
    creds = google.oauth2.credentials.Credentials.from_authorized_user_file(
        str(write_authorized_user(tmp_path / "adc.json"))
    )
    creds.refresh(make_request())
    return creds


# -- server lifecycle -----------------------------------------------------------------------------------


def test_server_starts_on_a_free_loopback_port_and_stops_idempotently() -> None:
    server = EmulatorServer(expires_in=120).start()
    try:
        assert server.port > 0
        assert server.host_port == f"127.0.0.1:{server.port}"
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.admin.config()["expires_in"] == 120
    finally:
        server.stop()
    server.stop()  # idempotent


# -- google-auth credential types through the seam --------------------------------------------------------


def test_authorized_user_refreshes_through_the_seam(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    creds = refreshed_user(tmp_path)
    assert (creds.token or "").startswith(TOKEN_PREFIX)
    assert creds.expiry is not None
    assert chat_status(bare_emu, creds.token) == 200
    stats = bare_emu.admin.stats()
    assert stats["original_hosts"] == {"oauth2.googleapis.com": 1}
    assert stats["tokens_by_grant"] == {"refresh_token": 1}
    assert stats["requests"]["token"] == 1
    assert stats["chat_ok"] == 1


def test_service_account_assertion_signature_is_verified(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    email = "signer@emulated-project.iam.gserviceaccount.com"
    good = write_service_account(
        tmp_path / "sa.json", client_email=email, register_with=bare_emu.state
    )
    creds = google.oauth2.service_account.Credentials.from_service_account_file(
        str(good), scopes=[CLOUD_PLATFORM]
    )
    creds.refresh(make_request())
    assert chat_status(bare_emu, creds.token) == 200
    assert bare_emu.state.stats()["tokens_by_grant"] == {"jwt_bearer": 1}

    # Same email, a key the emulator never saw: the signature check must refuse it.
    forged = write_service_account(tmp_path / "forged.json", client_email=email)
    forged_creds = google.oauth2.service_account.Credentials.from_service_account_file(
        str(forged), scopes=[CLOUD_PLATFORM]
    )
    with pytest.raises(
        google.auth.exceptions.RefreshError, match=r"invalid_grant.*Invalid JWT Signature"
    ):
        forged_creds.refresh(make_request())
    assert bare_emu.state.stats()["token_rejected"] == 1


def test_service_account_with_token_uri_at_the_emulator_needs_no_routing(
    bare_emu: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VERTEX_ENV_EMULATOR_HOST")
    path = write_service_account(tmp_path / "sa.json", bare_emu.url, register_with=bare_emu.admin)
    assert json.loads(path.read_text())["token_uri"] == f"{bare_emu.url}/token"
    creds = google.oauth2.service_account.Credentials.from_service_account_file(
        str(path), scopes=[CLOUD_PLATFORM]
    )
    creds.refresh(make_request())
    assert chat_status(bare_emu, creds.token) == 200
    assert bare_emu.state.requests(kind="token")[0]["original_host"] is None


@pytest.mark.parametrize("impersonate", [None, TARGET_SA])
def test_external_account_file_sourced(
    bare_emu: EmulatorServer, tmp_path: Path, impersonate: str | None
) -> None:
    path = write_external_account(
        tmp_path / "external.json",
        subject_token_file=tmp_path / "subject.jwt",
        impersonate=impersonate,
    )
    creds = google.auth.identity_pool.Credentials.from_file(str(path), scopes=[CLOUD_PLATFORM])
    creds.refresh(make_request())
    assert creds.token.startswith(TOKEN_PREFIX)
    assert chat_status(bare_emu, creds.token) == 200
    stats = bare_emu.state.stats()
    if impersonate:
        assert stats["tokens_by_grant"] == {"token_exchange": 1, "impersonation": 1}
        assert stats["original_hosts"] == {
            "sts.googleapis.com": 1,
            "iamcredentials.googleapis.com": 1,
        }
        assert bare_emu.state.issued_tokens()[-1]["principal"] == f"serviceAccount:{impersonate}"
    else:
        assert stats["tokens_by_grant"] == {"token_exchange": 1}
        assert stats["original_hosts"] == {"sts.googleapis.com": 1}


def test_external_account_authorized_user(bare_emu: EmulatorServer, tmp_path: Path) -> None:
    path = write_external_account_authorized_user(tmp_path / "workforce.json")
    creds = google.auth.external_account_authorized_user.Credentials.from_file(str(path))
    creds.refresh(make_request())
    assert chat_status(bare_emu, creds.token) == 200
    assert bare_emu.state.stats()["tokens_by_grant"] == {"sts_refresh_token": 1}


def test_impersonation_honours_lifetime_and_refuses_more_than_the_maximum(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    source = refreshed_user(tmp_path)
    creds = google.auth.impersonated_credentials.Credentials(
        source_credentials=source,
        target_principal=TARGET_SA,
        target_scopes=[CLOUD_PLATFORM],
        lifetime=600,
    )
    creds.refresh(make_request())
    assert creds.expiry is not None
    remaining = (
        creds.expiry - datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    ).total_seconds()
    assert 590 <= remaining <= 601
    assert chat_status(bare_emu, creds.token) == 200

    bare_emu.admin.configure(max_lifetime=3600)
    too_long = google.auth.impersonated_credentials.Credentials(
        source_credentials=source,
        target_principal=TARGET_SA,
        target_scopes=[CLOUD_PLATFORM],
        lifetime=7200,
    )
    with pytest.raises(google.auth.exceptions.RefreshError, match="lifetime"):
        too_long.refresh(make_request())


def test_impersonated_service_account_file(bare_emu: EmulatorServer, tmp_path: Path) -> None:
    path = write_impersonated_service_account(
        tmp_path / "imp.json", source=authorized_user_info(), target=TARGET_SA
    )
    creds = google.auth.impersonated_credentials.Credentials.from_impersonated_service_account_info(
        json.loads(path.read_text()), scopes=[CLOUD_PLATFORM]
    )
    creds.refresh(make_request())
    assert chat_status(bare_emu, creds.token) == 200
    assert bare_emu.state.stats()["tokens_by_grant"] == {"refresh_token": 1, "impersonation": 1}


def test_iam_refuses_callers_without_an_emulator_token(bare_emu: EmulatorServer) -> None:
    status, _, body = http(
        f"{bare_emu.url}/v1/projects/-/serviceAccounts/{TARGET_SA}:generateAccessToken",
        method="POST",
        body=json.dumps({"scope": [CLOUD_PLATFORM]}).encode(),
        headers={
            "Authorization": "Bearer ya29.not-issued-here",
            "Content-Type": "application/json",
        },
    )
    assert status == 401
    assert json.loads(body)["error"]["status"] == "UNAUTHENTICATED"


# -- metadata server ----------------------------------------------------------------------------------------

_METADATA_SCRIPT = textwrap.dedent(
    """
    import json, google.auth, google.auth.transport.requests
    credentials, project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    credentials.refresh(google.auth.transport.requests.Request())
    print(json.dumps({
        "class": type(credentials).__module__ + "." + type(credentials).__name__,
        "project": project,
        "token": credentials.token,
        "email": credentials.service_account_email,
    }))
    """
)


def test_metadata_server_serves_google_auth_default_in_a_subprocess(
    bare_emu: EmulatorServer,
) -> None:
    env = dict(os.environ)
    env.pop("NO_GCE_CHECK", None)
    env.pop("VERTEX_ENV_EMULATOR_HOST", None)
    env["GCE_METADATA_HOST"] = bare_emu.host_port
    env["GCE_METADATA_IP"] = bare_emu.host_port
    result = subprocess.run(
        [sys.executable, "-c", _METADATA_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["class"] == "google.auth.compute_engine.credentials.Credentials"
    assert found["project"] == "emulated-project"
    assert found["email"] == "default@emulated-project.iam.gserviceaccount.com"
    assert chat_status(bare_emu, found["token"]) == 200
    assert bare_emu.state.stats()["tokens_by_grant"] == {"metadata": 1}


def test_metadata_requires_the_flavor_header_and_echoes_it(bare_emu: EmulatorServer) -> None:
    url = f"{bare_emu.url}/computeMetadata/v1/project/project-id"
    status, _, _ = http(url)
    assert status == 403
    status, headers, body = http(url, headers={"Metadata-Flavor": "Google"})
    assert (status, headers["Metadata-Flavor"], body) == (200, "Google", b"emulated-project")
    status, _, body = http(
        f"{bare_emu.url}/computeMetadata/v1/instance/service-accounts/default/token?scopes=a,b",
        headers={"Metadata-Flavor": "Google"},
    )
    assert status == 200 and json.loads(body)["token_type"] == "Bearer"
    assert bare_emu.state.issued_tokens()[0]["scopes"] == ["a", "b"]


# -- chat completions with the openai SDK ---------------------------------------------------------------


def test_openai_chat_completion_and_streaming(bare_emu: EmulatorServer, tmp_path: Path) -> None:
    token = refreshed_user(tmp_path).token
    with openai_client(bare_emu, token) as client:
        completion = client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "Say hello"}]
        )
        assert completion.model == "google/gemini-2.5-flash"
        assert completion.choices[0].message.content == "Emulated reply to: Say hello"
        assert completion.usage is not None and completion.usage.total_tokens > 0

        bare_emu.admin.reply("one two three four five six seven eight")
        chunks = list(
            client.chat.completions.create(
                model="google/gemini-2.5-flash",
                messages=[{"role": "user", "content": "count"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len(pieces) > 3
    assert "".join(pieces) == "one two three four five six seven eight"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and not chunks[-1].choices
    recorded = bare_emu.admin.requests(kind="chat")
    assert recorded["chat"][-1]["body"]["stream"] is True
    assert recorded["chat"][-1]["headers"]["Authorization"] == "Bearer ***"


def test_openai_tool_calls_and_structured_output(bare_emu: EmulatorServer, tmp_path: Path) -> None:
    token = refreshed_user(tmp_path).token
    bare_emu.admin.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    with openai_client(bare_emu, token) as client:
        completion = client.chat.completions.create(
            model="google/gemini-2.5-flash",
            messages=[{"role": "user", "content": "weather?"}],
            tools=[],
        )
        call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert completion.choices[0].finish_reason == "tool_calls"
        assert call.function.name == "get_weather"  # type: ignore[union-attr]
        assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]

        bare_emu.admin.reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
        streamed = client.chat.completions.create(
            model="google/gemini-2.5-flash",
            messages=[{"role": "user", "content": "weather?"}],
            stream=True,
        )
        deltas = [d for c in streamed for d in (c.choices[0].delta.tool_calls or [])]
        assert deltas[0].function is not None and deltas[0].function.name == "get_weather"
        assert json.loads(deltas[0].function.arguments or "") == {"city": "Oslo"}

        schema: dict[str, object] = {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["name", "age", "tags"],
        }
        structured = client.chat.completions.create(
            model="google/gemini-2.5-flash",
            messages=[{"role": "user", "content": "who?"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "person", "schema": schema},
            },
        )
        assert json.loads(structured.choices[0].message.content or "") == {
            "name": "emulated",
            "age": 0,
            "tags": ["emulated"],
        }
        bare_emu.admin.reply('{"name": "Ada", "age": 36, "tags": []}')
        queued = client.chat.completions.create(
            model="google/gemini-2.5-flash",
            messages=[{"role": "user", "content": "who?"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "person", "schema": schema},
            },
        )
        assert json.loads(queued.choices[0].message.content or "")["name"] == "Ada"


def test_openai_sees_401_for_unknown_and_expired_tokens(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    with (
        openai_client(bare_emu, "ya29.bare_emu-never-issued") as client,
        pytest.raises(openai.AuthenticationError) as err,
    ):
        client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "x"}]
        )
    assert err.value.status_code == 401

    token = refreshed_user(tmp_path).token
    assert chat_status(bare_emu, token) == 200
    assert bare_emu.admin.expire() == 1
    with openai_client(bare_emu, token) as client, pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "x"}]
        )
    assert bare_emu.admin.stats()["chat_rejected"] == 2


def test_scripted_error_reply_and_repeat(bare_emu: EmulatorServer, tmp_path: Path) -> None:
    token = refreshed_user(tmp_path).token
    bare_emu.admin.reply(
        status=429,
        body={"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}},
    )
    bare_emu.admin.reply("always", repeat=True)
    with openai_client(bare_emu, token) as client:
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(
                model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "x"}]
            )
        for _ in range(2):
            answer = client.chat.completions.create(
                model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "x"}]
            )
            assert answer.choices[0].message.content == "always"


# -- faults -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429])
@pytest.mark.parametrize(
    ("target", "path", "headers"),
    [
        ("token", "/token", {}),
        ("iam", f"/v1/projects/-/serviceAccounts/{TARGET_SA}:generateAccessToken", {}),
        ("metadata", "/computeMetadata/v1/project/project-id", {"Metadata-Flavor": "Google"}),
        ("chat", "/v1/projects/p/locations/l/endpoints/openapi/chat/completions", {}),
    ],
)
def test_status_faults_hit_the_next_request_of_their_kind(
    bare_emu: EmulatorServer, status: int, target: str, path: str, headers: dict[str, str]
) -> None:
    bare_emu.admin.fault(target, status=status)
    method = "GET" if target == "metadata" else "POST"
    body = None if method == "GET" else b"{}"
    assert http(f"{bare_emu.url}{path}", method=method, body=body, headers=headers)[0] == status
    assert http(f"{bare_emu.url}{path}", method=method, body=body, headers=headers)[0] != status
    assert bare_emu.state.requests()[0]["fault"] == str(status)


@pytest.mark.slow
def test_status_fault_on_token_is_retried_by_google_auth(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    bare_emu.admin.fault("token", status=503)
    creds = refreshed_user(
        tmp_path
    )  # google-auth's own backoff retries 5xx/429 on the token endpoint
    assert chat_status(bare_emu, creds.token) == 200
    assert [r["status"] for r in bare_emu.state.requests(kind="token")] == [503, 200]


def test_invalid_grant_and_invalid_rapt_faults(bare_emu: EmulatorServer, tmp_path: Path) -> None:
    user = google.oauth2.credentials.Credentials.from_authorized_user_file(
        str(write_authorized_user(tmp_path / "adc.json"))
    )
    bare_emu.admin.fault("token", error="invalid_grant")
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        user.refresh(make_request())
    # For user credentials google-auth turns invalid_rapt into its own "Reauthentication is needed" text.
    bare_emu.admin.fault("token", error="invalid_rapt")
    with pytest.raises(google.auth.exceptions.RefreshError, match="Reauthentication is needed"):
        user.refresh(make_request())
    # For others the Google body (with error_subtype) rides in the exception.
    sa = google.oauth2.service_account.Credentials.from_service_account_file(
        str(write_service_account(tmp_path / "sa.json")), scopes=[CLOUD_PLATFORM]
    )
    bare_emu.admin.fault("token", error="invalid_rapt")
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_rapt") as err:
        sa.refresh(make_request())
    assert err.value.args[1]["error_subtype"] == "invalid_rapt"


def test_delay_fault_then_normal_answer(bare_emu: EmulatorServer, tmp_path: Path) -> None:
    bare_emu.admin.fault("token", delay=0.3)
    started = time.perf_counter()
    creds = refreshed_user(tmp_path)
    assert time.perf_counter() - started >= 0.3
    assert (creds.token or "").startswith(TOKEN_PREFIX)


def test_non_json_fault_answers_html(bare_emu: EmulatorServer, tmp_path: Path) -> None:
    bare_emu.admin.fault("token", non_json=True)
    user = google.oauth2.credentials.Credentials.from_authorized_user_file(
        str(write_authorized_user(tmp_path / "adc.json"))
    )
    # google-auth 2.x does not turn a 200 HTML body into RefreshError: callers must expect either.
    with pytest.raises((google.auth.exceptions.GoogleAuthError, TypeError, ValueError)):
        user.refresh(make_request())
    bare_emu.admin.fault("any", non_json=True)
    status, headers, body = http(f"{bare_emu.url}/token", method="POST", body=b"")
    assert (
        status == 200
        and headers["Content-Type"].startswith("text/html")
        and body.startswith(b"<html>")
    )


def test_close_fault_is_retried_by_the_seam_then_exhausts_it(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    user = google.oauth2.credentials.Credentials.from_authorized_user_file(
        str(write_authorized_user(tmp_path / "adc.json"))
    )
    bare_emu.admin.fault("token", close=True, count=1)
    user.refresh(make_request())
    assert user.token.startswith(TOKEN_PREFIX)
    bare_emu.admin.fault("token", close=True, count=3)
    with pytest.raises(google.auth.exceptions.TransportError):
        user.refresh(make_request())
    assert [r["fault"] for r in bare_emu.state.requests(kind="token")] == [
        "close",
        None,
        "close",
        "close",
        "close",
    ]
    assert bare_emu.state.pending_faults() == []


def test_admin_api_validates_and_resets(bare_emu: EmulatorServer) -> None:
    with pytest.raises(EmulatorAdminError, match="400"):
        bare_emu.admin.fault("token", status=500, error="invalid_grant")
    with pytest.raises(EmulatorAdminError, match="target"):
        bare_emu.admin.fault("nowhere", status=500)
    with pytest.raises(EmulatorAdminError, match="unknown config keys"):
        bare_emu.admin.configure(colour="blue")
    bare_emu.admin.fault("chat", status=500, count=2)
    assert bare_emu.admin.pending_faults() == [{"target": "chat", "status": 500, "count": 2}]
    bare_emu.admin.clear_faults()
    bare_emu.state.add_faults({"target": "any", "status": 503})
    bare_emu.admin.reply("x", repeat=True)
    bare_emu.admin.reset()
    stats = bare_emu.admin.stats()
    assert (
        stats["faults_pending"] == []
        and stats["replies_pending"] == 0
        and stats["tokens_issued"] == 0
    )


# -- secrets never recorded -----------------------------------------------------------------------------


def test_records_never_hold_secrets(bare_emu: EmulatorServer, tmp_path: Path) -> None:
    adc = write_authorized_user(tmp_path / "adc.json")
    info = json.loads(adc.read_text())
    user = google.oauth2.credentials.Credentials.from_authorized_user_file(str(adc))
    user.refresh(make_request())
    sa = google.oauth2.service_account.Credentials.from_service_account_file(
        str(write_service_account(tmp_path / "sa.json", register_with=bare_emu.state)),
        scopes=[CLOUD_PLATFORM],
    )
    sa.refresh(make_request())
    subject = tmp_path / "subject.jwt"
    external = google.auth.identity_pool.Credentials.from_file(
        str(
            write_external_account(
                tmp_path / "ext.json", subject_token_file=subject, impersonate=TARGET_SA
            )
        ),
        scopes=[CLOUD_PLATFORM],
    )
    external.refresh(make_request())
    with openai_client(bare_emu, user.token) as client:
        client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "x"}]
        )
    assert chat_status(bare_emu, "ya29.bare_emu-unknown-secret") == 401

    admin = bare_emu.admin
    dumped = json.dumps([admin.stats(), admin.requests(), admin.tokens(), admin.config()])
    secrets = [
        info["refresh_token"],
        info["client_secret"],
        user.token,
        sa.token,
        external.token,
        subject.read_text(),
    ]
    for secret in secrets:
        assert secret not in dumped
    assert "ya29.bare_emu-unknown-secret" not in dumped
    assert TOKEN_PREFIX not in dumped


# -- the command ------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_emulator_command_prints_exports_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    creds_dir = tmp_path / "creds"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vertex_env",
            "emulator",
            "--port",
            str(port),
            "--write-credentials",
            str(creds_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        second = process.stdout.readline()
        # render's sh format, as `vertex-env export` prints it: single-quoted, read back by sh as is
        assert first == f"export VERTEX_ENV_EMULATOR_HOST='127.0.0.1:{port}';\n"
        assert (
            second
            == f"export GOOGLE_APPLICATION_CREDENTIALS='{creds_dir / 'authorized_user.json'}';\n"
        )
        read_back = subprocess.run(
            [
                "sh",
                "-c",
                first + second + 'printf "%s\\n" "$VERTEX_ENV_EMULATOR_HOST" '
                '"$GOOGLE_APPLICATION_CREDENTIALS"',
            ],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": os.environ["PATH"]},
        ).stdout
        assert read_back == f"127.0.0.1:{port}\n{creds_dir / 'authorized_user.json'}\n"
        for name in ("authorized_user.json", "service_account.json", "external_account.json"):
            assert (creds_dir / name).stat().st_mode & 0o777 == 0o600
        status, _, body = http(f"http://127.0.0.1:{port}/__emulator/stats")
        assert status == 200
        assert json.loads(body)["known_keys"] == [
            json.loads((creds_dir / "service_account.json").read_text())["client_email"]
        ]
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert stdout == ""
    assert "listening on" in stderr and "stopped" in stderr


def test_emulator_command_help_ends_with_an_example() -> None:
    from click.testing import CliRunner

    from vertex_env.cli.group import cli

    result = CliRunner().invoke(cli, ["emulator", "--help"])
    assert result.exit_code == 0
    assert "VERTEX_ENV_EMULATOR_PORT" in result.output
    assert (
        result.output.rstrip()
        .splitlines()[-1]
        .strip()
        .startswith("VERTEX_ENV_EMULATOR_EXPIRES_IN=60 vertex-env emulator")
    )

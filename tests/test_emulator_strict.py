"""The emulator is as strict as Google: each test here fails against the lenient emulator it replaced.

Shapes and wording come from Google's answers (google.rpc.Status with ErrorInfo reasons, RFC 6749 bodies
from STS) as google-auth's tests and public reports show them; the clients are the real ones.
"""

from __future__ import annotations

import base64
import datetime
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import google.auth.credentials
import google.auth.exceptions
import google.auth.external_account_authorized_user
import google.auth.identity_pool
import google.auth.impersonated_credentials
import google.oauth2.credentials
import google.oauth2.service_account
import openai
import pytest
from conftest import http as http_request

from vertex_env.core.transport import make_request
from vertex_env.emulator import (
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


def http(
    url: str, *, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """(status, JSON body) of a JSON request."""
    data = None if body is None else json.dumps(body).encode()
    status, _, raw = http_request(
        url,
        method=method,
        body=data,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    return status, json.loads(raw)


def user_token(bare_emu: EmulatorServer, tmp_path: Path, scope: str | None = None) -> str:
    info = authorized_user_info()
    creds = google.oauth2.credentials.Credentials.from_authorized_user_info(
        info, scopes=[scope] if scope else None
    )
    creds.refresh(make_request())
    assert isinstance(creds.token, str)
    return creds.token


def unwrapped(status: int, body: Any) -> tuple[int, Any]:
    """An answer of Vertex's OpenAI-compatible path: an error comes as a list holding Google's error object
    (asserted here), handed back as that object; a success as it is."""
    if status >= 400:
        assert isinstance(body, list) and len(body) == 1, body
        return status, body[0]
    return status, body


def chat(bare_emu: EmulatorServer, token: str | None, **headers: str) -> tuple[int, Any]:
    auth = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return unwrapped(
        *http(
            bare_emu.chat_base_url(project="url-project") + "/chat/completions",
            method="POST",
            body={
                "model": "google/gemini-2.0-flash-001",
                "messages": [{"role": "user", "content": "hi"}],
            },
            headers={**auth, **headers},
        )
    )


def reason(body: Any) -> str:
    details = body["error"]["details"]
    assert details[0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert details[0]["domain"] == "googleapis.com"
    return str(details[0]["reason"])


# -- Vertex: Google's refusals, each with its ErrorInfo reason ---------------------------------------------


def test_chat_without_a_token_is_credentials_missing(bare_emu: EmulatorServer) -> None:
    status, body = chat(bare_emu, None)
    assert status == 401
    assert body["error"]["status"] == "UNAUTHENTICATED"
    assert body["error"]["message"].startswith(
        "Request is missing required authentication credential."
    )
    assert reason(body) == "CREDENTIALS_MISSING"


def test_chat_with_an_expired_token_says_access_token_expired(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    token = user_token(bare_emu, tmp_path)
    bare_emu.admin.expire()
    status, body = chat(bare_emu, token)
    assert status == 401
    assert body["error"]["status"] == "UNAUTHENTICATED"
    assert reason(body) == "ACCESS_TOKEN_EXPIRED"
    assert body["error"]["details"][0]["metadata"]["service"] == "aiplatform.googleapis.com"


def test_chat_with_a_token_never_issued_is_not_called_expired(bare_emu: EmulatorServer) -> None:
    status, body = chat(bare_emu, "ya29.never-issued-here")
    assert status == 401
    assert body["error"]["message"].startswith("Request had invalid authentication credentials.")
    assert reason(body) == "ACCESS_TOKEN_TYPE_UNSUPPORTED"


def test_the_clock_ages_tokens_until_google_says_expired(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    token = user_token(bare_emu, tmp_path)
    assert chat(bare_emu, token)[0] == 200
    clock = bare_emu.admin.advance_clock(3601)
    assert clock["offset"] == 3601
    status, body = chat(bare_emu, token)
    assert (status, reason(body)) == (401, "ACCESS_TOKEN_EXPIRED")
    bare_emu.admin.reset()  # forgets the clock move too
    assert bare_emu.admin.clock()["offset"] == 0


@pytest.mark.parametrize("advance", [-1, None, "soon", float("inf"), float("nan")])
def test_the_clock_refuses_to_go_back_or_nowhere(bare_emu: EmulatorServer, advance: Any) -> None:
    status, body = http(
        f"{bare_emu.url}/__emulator/clock", method="POST", body={"advance": advance}
    )
    assert status == 400, body
    assert bare_emu.admin.clock()["offset"] == 0


def test_chat_with_a_token_without_cloud_platform_scope_is_403_scope_insufficient(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    token = user_token(bare_emu, tmp_path, scope="https://www.googleapis.com/auth/userinfo.email")
    status, body = chat(bare_emu, token)
    assert status == 403
    assert body["error"] == {
        "code": 403,
        "message": "Request had insufficient authentication scopes.",
        "status": "PERMISSION_DENIED",
        "details": body["error"]["details"],
    }
    assert reason(body) == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    assert bare_emu.admin.stats()["chat_rejected"] == 1


def test_a_user_project_the_caller_may_not_use_is_403_user_project_denied(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    token = user_token(bare_emu, tmp_path)
    bare_emu.admin.configure(denied_projects=["not-mine"])
    status, body = chat(bare_emu, token, **{"x-goog-user-project": "not-mine"})
    assert status == 403
    assert body["error"]["status"] == "PERMISSION_DENIED"
    assert reason(body) == "USER_PROJECT_DENIED"
    assert body["error"]["details"][0]["metadata"]["consumer"] == "projects/not-mine"
    assert "serviceusage.services.use" in body["error"]["message"]
    assert chat(bare_emu, token, **{"x-goog-user-project": "mine"})[0] == 200
    assert chat(bare_emu, token)[0] == 200  # the header alone is checked, not the URL project


def test_a_consumer_project_with_vertex_disabled_is_403_service_disabled(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    token = user_token(bare_emu, tmp_path)
    bare_emu.admin.configure(disabled_projects=["quota-proj"])
    status, body = chat(bare_emu, token, **{"x-goog-user-project": "quota-proj"})
    assert status == 403
    assert reason(body) == "SERVICE_DISABLED"
    metadata = body["error"]["details"][0]["metadata"]
    assert metadata["consumer"] == "projects/quota-proj"
    assert metadata["service"] == "aiplatform.googleapis.com"
    assert "Vertex AI API has not been used in project quota-proj" in body["error"]["message"]
    assert chat(bare_emu, token)[0] == 200  # without the header the URL project is the consumer
    bare_emu.admin.configure(disabled_projects=["url-project"])
    assert reason(chat(bare_emu, token)[1]) == "SERVICE_DISABLED"


def test_an_injected_429_has_google_resource_exhausted_shape(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    token = user_token(bare_emu, tmp_path)
    bare_emu.admin.fault("chat", status=429)
    status, body = chat(bare_emu, token)
    assert status == 429
    assert body["error"]["code"] == 429
    assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert body["error"]["message"].startswith("Resource exhausted. Please try again later.")
    bare_emu.admin.reply(status=429)  # a scripted error without a body gets the same shape
    assert chat(bare_emu, token)[1]["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_the_openai_sdk_sees_google_bodies(bare_emu: EmulatorServer, tmp_path: Path) -> None:
    token = user_token(bare_emu, tmp_path)
    bare_emu.admin.expire()
    with (
        openai.OpenAI(base_url=bare_emu.chat_base_url(), api_key=token, max_retries=0) as client,
        pytest.raises(openai.AuthenticationError) as err,
    ):
        client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "x"}]
        )
    assert err.value.status_code == 401
    # Vertex wraps the error in a list there: the SDK cannot unwrap it, and hands the list over as it came.
    assert isinstance(err.value.body, list)
    assert err.value.body[0]["error"]["details"][0]["reason"] == "ACCESS_TOKEN_EXPIRED"


# -- Vertex: embeddings, with the OpenAI response shape ------------------------------------------------------


def test_embeddings_through_the_openai_sdk(bare_emu: EmulatorServer, tmp_path: Path) -> None:
    token = user_token(bare_emu, tmp_path)
    with openai.OpenAI(base_url=bare_emu.chat_base_url(), api_key=token, max_retries=0) as client:
        # The SDK asks for base64 and decodes it; an explicit float list must agree with it.
        first = client.embeddings.create(
            model="google/text-embedding-005", input=["hello", "world"]
        )
        again = client.embeddings.create(
            model="google/text-embedding-005", input="hello", encoding_format="float"
        )
        small = client.embeddings.create(
            model="google/text-embedding-005", input="hello", dimensions=8
        )
    assert [d.index for d in first.data] == [0, 1]
    assert len(first.data[0].embedding) == 768
    assert first.data[0].embedding == pytest.approx(again.data[0].embedding, abs=1e-6)
    assert first.data[0].embedding != first.data[1].embedding
    assert sum(v * v for v in first.data[0].embedding) == pytest.approx(1.0, abs=1e-3)
    assert len(small.data[0].embedding) == 8
    assert first.model == "google/text-embedding-005"
    assert first.usage.prompt_tokens == first.usage.total_tokens == 2


def test_embeddings_raw_shape_and_refusals(bare_emu: EmulatorServer, tmp_path: Path) -> None:
    token = user_token(bare_emu, tmp_path)
    url = bare_emu.chat_base_url() + "/embeddings"
    status, body = http(
        url,
        method="POST",
        body={
            "model": "google/text-embedding-005",
            "input": "x",
            "encoding_format": "base64",
            "dimensions": 4,
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert status == 200
    assert body["object"] == "list"
    assert set(body["data"][0]) == {"object", "index", "embedding"}
    assert len(struct.unpack("<4f", base64.b64decode(body["data"][0]["embedding"]))) == 4
    status, body = unwrapped(
        *http(url, method="POST", body={"model": "google/text-embedding-005", "input": "x"})
    )
    assert (status, reason(body)) == (401, "CREDENTIALS_MISSING")
    status, _ = unwrapped(
        *http(
            url,
            method="POST",
            body={"model": "google/text-embedding-005"},
            headers={"Authorization": f"Bearer {token}"},
        )
    )
    assert status == 400


# -- STS and the token endpoint: Google's error bodies as faults, for every credential type ------------------


def _authorized_user(
    bare_emu: EmulatorServer, tmp_path: Path
) -> google.auth.credentials.Credentials:
    return google.oauth2.credentials.Credentials.from_authorized_user_file(
        str(write_authorized_user(tmp_path / "adc.json"))
    )


def _service_account(
    bare_emu: EmulatorServer, tmp_path: Path
) -> google.auth.credentials.Credentials:
    path = write_service_account(tmp_path / "sa.json", register_with=bare_emu.state)
    return google.oauth2.service_account.Credentials.from_service_account_file(
        str(path), scopes=[CLOUD_PLATFORM]
    )


def _external_account(
    bare_emu: EmulatorServer, tmp_path: Path
) -> google.auth.credentials.Credentials:
    path = write_external_account(tmp_path / "ext.json", subject_token_file=tmp_path / "subject")
    return google.auth.identity_pool.Credentials.from_file(str(path), scopes=[CLOUD_PLATFORM])


def _external_account_impersonated(
    bare_emu: EmulatorServer, tmp_path: Path
) -> google.auth.credentials.Credentials:
    path = write_external_account(
        tmp_path / "ext.json", subject_token_file=tmp_path / "subject", impersonate=TARGET_SA
    )
    return google.auth.identity_pool.Credentials.from_file(str(path), scopes=[CLOUD_PLATFORM])


def _external_account_authorized_user(
    bare_emu: EmulatorServer, tmp_path: Path
) -> google.auth.credentials.Credentials:
    path = write_external_account_authorized_user(tmp_path / "workforce.json")
    return google.auth.external_account_authorized_user.Credentials.from_file(str(path))


def _impersonated_service_account(
    bare_emu: EmulatorServer, tmp_path: Path
) -> google.auth.credentials.Credentials:
    path = write_impersonated_service_account(
        tmp_path / "imp.json", source=authorized_user_info(), target=TARGET_SA
    )
    return google.auth.impersonated_credentials.Credentials.from_impersonated_service_account_info(
        json.loads(path.read_text()), scopes=[CLOUD_PLATFORM]
    )


CREDENTIALS: dict[str, Callable[[EmulatorServer, Path], google.auth.credentials.Credentials]] = {
    "authorized_user": _authorized_user,
    "service_account": _service_account,
    "external_account": _external_account,
    "external_account+impersonation": _external_account_impersonated,
    "external_account_authorized_user": _external_account_authorized_user,
    "impersonated_service_account": _impersonated_service_account,
}

STS_ERRORS = {
    "invalid_grant": "Token has been expired or revoked.",
    "invalid_request": 'Invalid value for "audience"',
    "audience_mismatch": "does not match the expected audience",
    "unauthorized_client": "The given credential is rejected by the attribute condition.",
    "invalid_target": 'The target service indicated by the "audience" parameters is invalid.',
}


@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
@pytest.mark.parametrize("error", sorted(STS_ERRORS))
def test_oauth_and_sts_error_faults_reach_every_credential_type(
    bare_emu: EmulatorServer, tmp_path: Path, kind: str, error: str
) -> None:
    creds = CREDENTIALS[kind](bare_emu, tmp_path)
    bare_emu.admin.fault("token", error=error)
    with pytest.raises(google.auth.exceptions.GoogleAuthError) as raised:
        creds.refresh(make_request())
    text = str(raised.value)
    assert STS_ERRORS[error] in text
    wire_error = "invalid_grant" if error == "audience_mismatch" else error
    assert wire_error in text
    assert bare_emu.state.requests(kind="token")[0]["status"] == 400
    creds.refresh(make_request())  # the fault was used up: the next refresh works
    assert creds.token


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
def test_a_5xx_fault_reaches_every_credential_type_with_a_server_error_body(
    bare_emu: EmulatorServer, tmp_path: Path, kind: str
) -> None:
    creds = CREDENTIALS[kind](bare_emu, tmp_path)
    bare_emu.admin.fault("token", status=503, count=10)  # outlasts google-auth's own retries
    with pytest.raises(google.auth.exceptions.GoogleAuthError) as raised:
        creds.refresh(make_request())
    assert "server_error" in str(raised.value)


def test_sts_refuses_an_audience_that_is_not_a_provider_resource_name(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    path = write_external_account(
        tmp_path / "ext.json",
        subject_token_file=tmp_path / "subject",
        audience="projects/123/locations/global/workloadIdentityPools/pool",  # a pool, no provider
    )
    creds = google.auth.identity_pool.Credentials.from_file(str(path), scopes=[CLOUD_PLATFORM])
    with pytest.raises(
        google.auth.exceptions.GoogleAuthError, match='Invalid value for "audience"'
    ):
        creds.refresh(make_request())
    assert bare_emu.admin.stats()["token_rejected"] == 1


# -- IAM generateAccessToken: lifetime policy and delegates ---------------------------------------------------


def _impersonated(
    tmp_path: Path, lifetime: int
) -> google.auth.impersonated_credentials.Credentials:
    source = google.oauth2.credentials.Credentials.from_authorized_user_info(authorized_user_info())
    return google.auth.impersonated_credentials.Credentials(
        source_credentials=source,
        target_principal=TARGET_SA,
        target_scopes=[CLOUD_PLATFORM],
        lifetime=lifetime,
    )


def _remaining(creds: google.auth.credentials.Credentials) -> float:
    assert creds.expiry is not None
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return (creds.expiry - now).total_seconds()


def test_a_lifetime_above_an_hour_needs_the_org_policy(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    creds = _impersonated(tmp_path, 7200)
    with pytest.raises(
        google.auth.exceptions.RefreshError,
        match=r"iam\.allowServiceAccountCredentialLifetimeExtension",
    ):
        creds.refresh(make_request())
    bare_emu.admin.configure(lifetime_extension=["someone-else@p.iam.gserviceaccount.com"])
    with pytest.raises(google.auth.exceptions.RefreshError, match="3600s"):
        _impersonated(tmp_path, 7200).refresh(make_request())
    bare_emu.admin.configure(lifetime_extension=[TARGET_SA])
    allowed = _impersonated(tmp_path, 7200)
    allowed.refresh(make_request())
    assert 7190 <= _remaining(allowed) <= 7201
    hour = _impersonated(tmp_path, 3600)
    bare_emu.admin.configure(lifetime_extension=[])
    hour.refresh(make_request())  # an hour never needs the policy
    assert 3590 <= _remaining(hour) <= 3601


def test_the_emulator_option_allows_lifetime_extension_for_every_account() -> None:
    with EmulatorServer(lifetime_extension=True) as server:
        assert server.admin.config()["lifetime_extension"] == ["*"]


@pytest.mark.parametrize(
    ("delegates", "status"),
    [
        ([], 200),
        (["projects/-/serviceAccounts/hop@p.iam.gserviceaccount.com"], 200),
        (["hop@p.iam.gserviceaccount.com"], 200),  # as gcloud writes them in ADC files
        (["projects/-/serviceAccounts/123456789012345678901"], 200),
        (["not an account"], 400),
        (["projects/p/serviceAccounts/hop@p.iam.gserviceaccount.com"], 400),
        ([""], 400),
        ("hop@p.iam.gserviceaccount.com", 400),
    ],
)
def test_delegates_are_validated(
    bare_emu: EmulatorServer, tmp_path: Path, delegates: Any, status: int
) -> None:
    token = user_token(bare_emu, tmp_path)
    got, body = http(
        f"{bare_emu.url}/v1/projects/-/serviceAccounts/{TARGET_SA}:generateAccessToken",
        method="POST",
        body={"scope": [CLOUD_PLATFORM], "delegates": delegates},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert got == status, body
    if status == 400:
        assert body["error"]["status"] == "INVALID_ARGUMENT"


def test_iam_says_why_a_token_is_refused(bare_emu: EmulatorServer, tmp_path: Path) -> None:
    url = f"{bare_emu.url}/v1/projects/-/serviceAccounts/{TARGET_SA}:generateAccessToken"
    token = user_token(bare_emu, tmp_path)
    bare_emu.admin.expire()
    for header, expected in (
        ({}, "CREDENTIALS_MISSING"),
        ({"Authorization": "Bearer ya29.unknown"}, "ACCESS_TOKEN_TYPE_UNSUPPORTED"),
        ({"Authorization": f"Bearer {token}"}, "ACCESS_TOKEN_EXPIRED"),
    ):
        status, body = http(url, method="POST", body={"scope": [CLOUD_PLATFORM]}, headers=header)
        assert (status, reason(body)) == (401, expected)


# -- the metadata server: one cached token, handed back with what it has left --------------------------------


def _metadata_token(bare_emu: EmulatorServer) -> tuple[str, int]:
    status, body = http(
        f"{bare_emu.url}/computeMetadata/v1/instance/service-accounts/default/token",
        headers={"Metadata-Flavor": "Google"},
    )
    assert status == 200
    return str(body["access_token"]), int(body["expires_in"])


def test_metadata_hands_back_its_cached_token_until_minutes_remain(
    bare_emu: EmulatorServer,
) -> None:
    first, expires_in = _metadata_token(bare_emu)
    assert 3599 <= expires_in <= 3600
    bare_emu.admin.advance_clock(1000)
    again, left = _metadata_token(bare_emu)
    assert again == first
    assert 2599 <= left <= 2600
    bare_emu.admin.advance_clock(
        2600 - 299
    )  # under metadata_refresh_before (300 s) left: a new token
    fresh, fresh_left = _metadata_token(bare_emu)
    assert fresh != first
    assert 3599 <= fresh_left <= 3600
    assert bare_emu.admin.stats()["tokens_by_grant"] == {"metadata": 2}


# -- the admin API describes itself ----------------------------------------------------------------------------


def test_admin_index_lists_every_route(bare_emu: EmulatorServer) -> None:
    index = bare_emu.admin.index()
    routes = {(r["method"], r["path"]) for r in index["admin_api"]}
    assert {
        ("GET", "/__emulator/"),
        ("POST", "/__emulator/faults"),
        ("POST", "/__emulator/reply"),
        ("POST", "/__emulator/clock"),
        ("POST", "/__emulator/config"),
    } <= routes
    assert all(r["does"] for r in index["admin_api"])
    assert "unauthorized_client" in index["fault_errors"]
    assert {"lifetime_extension", "denied_projects", "disabled_projects"} <= set(
        index["config_keys"]
    )
    for method, path in routes:
        if method == "GET":
            assert http(bare_emu.url + path)[0] == 200, path

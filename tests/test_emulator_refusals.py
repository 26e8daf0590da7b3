"""Google's refusals, as the emulator answers them: each switched on per project through the admin API, each with
Google's body (list-wrapped on the OpenAI-compatible paths), and the auth side (IAM, OAuth, STS, assertions).

Clients are the real ones: urllib for the raw bodies, the openai SDK, google-auth for the token side.
"""

from __future__ import annotations

import json
import typing
import urllib.parse
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google.auth.identity_pool
import google.auth.impersonated_credentials
import google.oauth2.credentials
import google.oauth2.service_account
import openai
import pytest
from conftest import http as http_request
from openai.types.chat import ChatCompletionMessageParam

from vertex_env.core.transport import make_request
from vertex_env.emulator import (
    EmulatorAdminError,
    EmulatorServer,
    Refusal,
    authorized_user_info,
    write_external_account,
    write_service_account,
)
from vertex_env.emulator.google_errors import REFUSALS
from vertex_env.testing import OFFLINE_PROJECT, OfflineVertex

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
PROJECT = "team-project"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
MODEL_NOT_FOUND = (
    "Publisher Model `projects/{project}/locations/{location}/publishers/google/models/{model}` was "
    "not found or your project does not have access to it. Please ensure you are using a valid model "
    "version. For more information, see: "
    "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions"
)


def user_token() -> str:
    creds = google.oauth2.credentials.Credentials.from_authorized_user_info(authorized_user_info())
    creds.refresh(make_request())
    assert isinstance(creds.token, str)
    return creds.token


def post(url: str, body: Any, token: str | None, **headers: str) -> tuple[int, dict[str, str], Any]:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    status, got_headers, raw = http_request(
        url,
        method="POST",
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **auth, **headers},
    )
    return status, got_headers, json.loads(raw)


def chat(
    emu: EmulatorServer,
    token: str | None,
    *,
    project: str = PROJECT,
    location: str = "us-central1",
    model: str = "google/gemini-2.5-flash",
    **headers: str,
) -> tuple[int, Any]:
    base = emu.chat_base_url(urllib.parse.quote(project), location)
    status, _, body = post(
        base + "/chat/completions",
        {"model": model, "messages": [{"role": "user", "content": "hi"}]},
        token,
        **headers,
    )
    return status, body


def error_of(body: Any) -> dict[str, Any]:
    """Google's error object out of the OpenAI-compatible path's list (asserted to be one)."""
    assert isinstance(body, list) and len(body) == 1 and set(body[0]) == {"error"}, body
    error: dict[str, Any] = body[0]["error"]
    return error


def info_of(error: dict[str, Any]) -> dict[str, Any]:
    (info,) = [d for d in error.get("details", []) if d["@type"] == ERROR_INFO]
    return info


# -- each refusal switched on per project ----------------------------------------------------------------


def test_the_admin_client_knows_every_refusal_the_emulator_does() -> None:
    assert list(typing.get_args(Refusal)) == list(REFUSALS)


@pytest.mark.parametrize(
    ("refusal", "status", "google_status", "reason", "domain"),
    [
        ("SERVICE_DISABLED", 403, "PERMISSION_DENIED", "SERVICE_DISABLED", "googleapis.com"),
        ("BILLING_DISABLED", 403, "PERMISSION_DENIED", "BILLING_DISABLED", "googleapis.com"),
        ("CONSUMER_INVALID", 403, "PERMISSION_DENIED", "CONSUMER_INVALID", "googleapis.com"),
        (
            "IAM_PERMISSION_DENIED",
            403,
            "PERMISSION_DENIED",
            "IAM_PERMISSION_DENIED",
            "aiplatform.googleapis.com",
        ),
        (
            "VPC_SERVICE_CONTROLS",
            403,
            "PERMISSION_DENIED",
            "SECURITY_POLICY_VIOLATED",
            "googleapis.com",
        ),
        ("RESOURCE_EXHAUSTED", 429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED", "googleapis.com"),
        (
            "QUOTA_PROJECT_REQUIRED",
            403,
            "PERMISSION_DENIED",
            "SERVICE_DISABLED",
            "googleapis.com",
        ),
    ],
)
def test_a_refusal_switched_on_for_a_project_answers_googles_body_until_switched_off(
    bare_emu: EmulatorServer,
    refusal: Refusal,
    status: int,
    google_status: str,
    reason: str,
    domain: str,
) -> None:
    token = user_token()
    assert chat(bare_emu, token)[0] == 200
    assert bare_emu.admin.refuse(PROJECT, refusal) == {PROJECT: [refusal]}
    got, body = chat(bare_emu, token)
    error = error_of(body)
    assert (got, error["code"], error["status"]) == (status, status, google_status)
    info = info_of(error)
    assert (info["reason"], info["domain"]) == (reason, domain)
    assert chat(bare_emu, token, project="other-project")[0] == 200  # per project
    record = bare_emu.admin.vertex_requests()[-2]
    assert (record["project"], record["status"], record["reason"]) == (PROJECT, status, reason)
    assert bare_emu.admin.allow(PROJECT, refusal) == {}
    assert chat(bare_emu, token)[0] == 200


def test_service_disabled_names_the_consumer_and_the_activation_url(
    bare_emu: EmulatorServer,
) -> None:
    bare_emu.admin.refuse("billing-proj", "SERVICE_DISABLED")
    token = user_token()
    assert chat(bare_emu, token)[0] == 200  # the URL's project has it enabled
    status, body = chat(bare_emu, token, **{"x-goog-user-project": "billing-proj"})
    error = error_of(body)
    assert status == 403
    url = (
        "https://console.developers.google.com/apis/api/aiplatform.googleapis.com/overview"
        "?project=billing-proj"
    )
    assert error["message"] == (
        f"Vertex AI API has not been used in project billing-proj before or it is disabled. Enable it "
        f"by visiting {url} then retry. If you enabled this API recently, wait a few minutes for the "
        "action to propagate to our systems and retry."
    )
    assert info_of(error)["metadata"] == {
        "consumer": "projects/billing-proj",
        "service": "aiplatform.googleapis.com",
        "serviceTitle": "Vertex AI API",
        "containerInfo": "billing-proj",
        "activationUrl": url,
    }
    assert [d["@type"].rsplit(".", 1)[-1] for d in error["details"]] == [
        "ErrorInfo",
        "LocalizedMessage",
        "Help",
    ]
    assert error["details"][2]["links"] == [
        {"description": "Google developers console API activation", "url": url}
    ]


def test_the_quota_project_refusal_is_for_user_credentials_without_the_header(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    bare_emu.admin.refuse(PROJECT, "QUOTA_PROJECT_REQUIRED")
    user = user_token()
    status, body = chat(bare_emu, user)
    error = error_of(body)
    assert status == 403
    assert error["message"].startswith(
        "Your application is authenticating by using local Application Default Credentials. The "
        "aiplatform.googleapis.com API requires a quota project, which is not set by default."
    )
    assert info_of(error)["metadata"] == {
        "consumer": "projects/764086051850",
        "service": "aiplatform.googleapis.com",
    }
    # The header (run --proxy, serve, set-quota-project) is the fix; a service account never needs it.
    assert chat(bare_emu, user, **{"x-goog-user-project": PROJECT})[0] == 200
    sa = google.oauth2.service_account.Credentials.from_service_account_file(
        str(write_service_account(tmp_path / "sa.json", register_with=bare_emu.admin)),
        scopes=[CLOUD_PLATFORM],
    )
    sa.refresh(make_request())
    assert chat(bare_emu, sa.token)[0] == 200


def test_iam_permission_denied_names_the_permission_and_the_openapi_resource(
    bare_emu: EmulatorServer,
) -> None:
    bare_emu.admin.refuse(PROJECT, "IAM_PERMISSION_DENIED")
    status, body = chat(bare_emu, user_token(), location="global")
    error = error_of(body)
    resource = f"projects/{PROJECT}/locations/global/endpoints/openapi"
    assert error["message"] == (
        f"Permission 'aiplatform.endpoints.predict' denied on resource "
        f"'//aiplatform.googleapis.com/{resource}' (or it may not exist)."
    )
    assert info_of(error)["metadata"] == {
        "permission": "aiplatform.endpoints.predict",
        "resource": resource,
    }
    # The endpoints list is a plain REST path: the same refusal, not wrapped, for the list permission.
    status, _, listed = http_json(
        f"{bare_emu.url}/v1/projects/{PROJECT}/locations/us-east5/endpoints", user_token()
    )
    assert status == 403 and isinstance(listed, dict)
    assert info_of(listed["error"])["metadata"] == {
        "permission": "aiplatform.endpoints.list",
        "resource": f"projects/{PROJECT}/locations/us-east5",
    }


def http_json(url: str, token: str | None) -> tuple[int, dict[str, str], Any]:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    status, headers, raw = http_request(url, headers=auth)
    return status, headers, json.loads(raw)


def test_consumer_invalid_for_a_display_name_always_and_for_a_project_switched_on(
    bare_emu: EmulatorServer,
) -> None:
    token = user_token()
    status, body = chat(bare_emu, token, project="My First Project")
    error = error_of(body)
    assert (status, error["message"]) == (
        403,
        "Permission denied on resource project My First Project.",
    )
    assert info_of(error)["metadata"]["consumer"] == "projects/My First Project"
    bare_emu.admin.refuse("deleted-project", "CONSUMER_INVALID")
    assert info_of(error_of(chat(bare_emu, token, project="deleted-project")[1]))["reason"] == (
        "CONSUMER_INVALID"
    )


def test_user_project_denied_is_about_the_header_project(bare_emu: EmulatorServer) -> None:
    bare_emu.admin.refuse("not-mine", "USER_PROJECT_DENIED")
    token = user_token()
    status, body = chat(bare_emu, token, **{"x-goog-user-project": "not-mine"})
    error = error_of(body)
    assert status == 403
    assert info_of(error)["metadata"] == {
        "consumer": "projects/not-mine",
        "service": "aiplatform.googleapis.com",
        "containerInfo": "not-mine",
    }
    assert chat(bare_emu, token, project="not-mine")[0] == 200  # as the URL's project it is fine


def test_billing_quota_and_vpc_bodies(bare_emu: EmulatorServer) -> None:
    token = user_token()
    admin = bare_emu.admin
    admin.refuse(PROJECT, "BILLING_DISABLED")
    error = error_of(chat(bare_emu, token)[1])
    assert error["message"].startswith(
        f"This API method requires billing to be enabled. Please enable billing on project #{PROJECT} "
        f"by visiting https://console.developers.google.com/billing/enable?project={PROJECT} then retry."
    )
    admin.allow()
    admin.refuse(PROJECT, "RESOURCE_EXHAUSTED")
    status, body = chat(bare_emu, token, location="europe-west4")
    error = error_of(body)
    number = bare_emu.state.project_number(PROJECT)
    assert status == 429
    assert error["message"].endswith(f"for consumer 'project_number:{number}'.")
    metadata = info_of(error)["metadata"]
    assert metadata["quota_metric"] == "aiplatform.googleapis.com/online_prediction_requests"
    assert metadata["quota_location"] == "europe-west4"
    assert metadata["consumer"] == f"projects/{number}"
    assert {"quota_limit", "quota_limit_value", "quota_unit"} <= set(metadata)
    admin.allow()
    admin.refuse(PROJECT, "VPC_SERVICE_CONTROLS")
    error = error_of(chat(bare_emu, token)[1])
    uid = info_of(error)["metadata"]["uid"]
    assert error["message"] == (
        f"Request is prohibited by organization's policy. vpcServiceControlsUniqueIdentifier: {uid}"
    )
    assert error["details"][0] == {
        "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
        "violations": [{"type": "VPC_SERVICE_CONTROLS", "description": uid}],
    }


def test_refusals_come_in_vertex_order(bare_emu: EmulatorServer) -> None:
    admin = bare_emu.admin
    for refusal in reversed(list(REFUSALS)):
        admin.refuse(PROJECT, refusal)  # type: ignore[arg-type]
    admin.refuse("billing", "USER_PROJECT_DENIED")
    token = user_token()
    seen = []
    for refusal in REFUSALS:
        if refusal == "USER_PROJECT_DENIED":
            body = chat(bare_emu, token, **{"x-goog-user-project": "billing"})[1]
            seen.append(info_of(error_of(body))["reason"])
            continue
        body = chat(bare_emu, token)[1]
        seen.append(info_of(error_of(body))["reason"])
        admin.allow(PROJECT, refusal)  # type: ignore[arg-type]
    assert seen == [REFUSALS[name][2] for name in REFUSALS]


def test_the_openai_sdk_sees_a_list_and_only_the_status_in_its_message(
    bare_emu: EmulatorServer,
) -> None:
    bare_emu.admin.refuse(PROJECT, "SERVICE_DISABLED")
    with (
        openai.OpenAI(
            base_url=bare_emu.chat_base_url(PROJECT), api_key=user_token(), max_retries=0
        ) as client,
        pytest.raises(openai.PermissionDeniedError) as err,
    ):
        client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "x"}]
        )
    # App code reading e.body["error"] breaks here, as on Vertex.
    assert isinstance(err.value.body, list)
    assert err.value.body[0]["error"]["details"][0]["reason"] == "SERVICE_DISABLED"
    assert str(err.value) == "Error code: 403"  # the SDK reports only the status of a list body


def test_the_admin_api_validates_refusals(bare_emu: EmulatorServer) -> None:
    admin = bare_emu.admin
    with pytest.raises(EmulatorAdminError, match="refusal is one of"):
        admin.refuse(PROJECT, "NOT_A_REASON")  # type: ignore[arg-type]
    admin.configure(disabled_projects=["old-style"], denied_projects=["old-denied"])
    admin.refuse("a", "BILLING_DISABLED")
    admin.refuse("a", "SERVICE_DISABLED")
    admin.refuse("b", "BILLING_DISABLED")
    assert admin.refusals() == {
        "a": ["SERVICE_DISABLED", "BILLING_DISABLED"],
        "b": ["BILLING_DISABLED"],
        "old-denied": ["USER_PROJECT_DENIED"],
        "old-style": ["SERVICE_DISABLED"],
    }
    assert admin.allow(refusal="BILLING_DISABLED") == {
        "a": ["SERVICE_DISABLED"],
        "old-denied": ["USER_PROJECT_DENIED"],
        "old-style": ["SERVICE_DISABLED"],
    }
    admin.allow("a")
    admin.configure(disabled_projects=[], denied_projects=[])
    assert admin.refusals() == {}
    assert bare_emu.admin.index()["refusals"] == list(REFUSALS)
    # A number names the same project as its id.
    admin.refuse(bare_emu.state.project_number(PROJECT), "SERVICE_DISABLED")
    assert chat(bare_emu, user_token())[0] == 403


# -- models and locations Vertex does not serve --------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "model", "named"),
    [
        ("us-central1", "google/gemini-0-nonexistent", "gemini-0-nonexistent"),
        ("us-central1", "gemini-2.5-flash", "gemini-2.5-flash"),  # no publisher prefix
        ("us-central1", "google/gemini-3-pro-preview", "gemini-3-pro-preview"),  # global only
        ("mars-north1", "google/gemini-2.5-flash", "gemini-2.5-flash"),  # no such location
    ],
)
def test_a_model_vertex_does_not_serve_there_is_googles_404(
    bare_emu: EmulatorServer, location: str, model: str, named: str
) -> None:
    status, body = chat(bare_emu, user_token(), location=location, model=model)
    error = error_of(body)
    assert (status, error["status"]) == (404, "NOT_FOUND")
    assert error["message"] == MODEL_NOT_FOUND.format(
        project=PROJECT, location=location, model=named
    )
    assert bare_emu.admin.vertex_requests()[-1]["reason"] == "NOT_FOUND"


def test_global_serves_what_a_region_does_not_and_the_catalog_decides(
    bare_emu: EmulatorServer,
) -> None:
    token = user_token()
    assert chat(bare_emu, token, location="global", model="google/gemini-3-pro-preview")[0] == 200
    bare_emu.admin.put_model("gemini-3-pro-preview", locations=["global", "us-central1"])
    assert chat(bare_emu, token, model="google/gemini-3-pro-preview")[0] == 200
    bare_emu.admin.remove_model("gemini-2.5-flash")
    assert chat(bare_emu, token, model="google/gemini-2.5-flash")[0] == 404


def test_a_model_for_the_other_operation_is_refused(bare_emu: EmulatorServer) -> None:
    token = user_token()
    base = bare_emu.chat_base_url(PROJECT)
    status, _, body = post(
        base + "/embeddings", {"model": "google/gemini-2.5-flash", "input": "x"}, token
    )
    assert (status, error_of(body)["status"]) == (400, "INVALID_ARGUMENT")
    assert chat(bare_emu, token, model="google/text-embedding-005")[0] == 400
    status, _, body = post(
        base + "/embeddings", {"model": "google/text-embedding-005", "input": "x"}, token
    )
    assert status == 200
    with (
        openai.OpenAI(base_url=base, api_key=token, max_retries=0) as client,
        pytest.raises(openai.NotFoundError),
    ):
        client.embeddings.create(model="text-embedding-005", input="x")


def test_an_injected_fault_on_the_openai_path_is_wrapped_too(bare_emu: EmulatorServer) -> None:
    bare_emu.admin.fault("chat", status=503)
    status, body = chat(bare_emu, user_token())
    assert (status, error_of(body)["status"]) == (503, "UNAVAILABLE")
    bare_emu.admin.reply(status=429)
    assert error_of(chat(bare_emu, user_token())[1])["status"] == "RESOURCE_EXHAUSTED"


# -- the auth side -----------------------------------------------------------------------------------------


def test_iam_refuses_to_mint_for_an_account_the_caller_may_not_impersonate(
    bare_emu: EmulatorServer,
) -> None:
    target = "locked@team-project.iam.gserviceaccount.com"
    bare_emu.admin.configure(impersonation_denied=[target])
    source = google.oauth2.credentials.Credentials.from_authorized_user_info(authorized_user_info())
    source.refresh(make_request())
    creds = google.auth.impersonated_credentials.Credentials(
        source_credentials=source, target_principal=target, target_scopes=[CLOUD_PLATFORM]
    )
    with pytest.raises(google.auth.exceptions.RefreshError, match="getAccessToken"):
        creds.refresh(make_request())
    status, _, body = post(
        f"{bare_emu.url}/v1/projects/-/serviceAccounts/{target}:generateAccessToken",
        {"scope": [CLOUD_PLATFORM]},
        source.token,
    )
    assert status == 403
    assert body["error"]["message"] == (
        "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist)."
    )
    assert info_of(body["error"]) == {
        "@type": ERROR_INFO,
        "reason": "IAM_PERMISSION_DENIED",
        "domain": "iam.googleapis.com",
        "metadata": {"permission": "iam.serviceAccounts.getAccessToken"},
    }
    other = google.auth.impersonated_credentials.Credentials(
        source_credentials=source,
        target_principal="open@team-project.iam.gserviceaccount.com",
        target_scopes=[CLOUD_PLATFORM],
    )
    other.refresh(make_request())  # only the listed account is locked


def test_an_oauth_client_google_does_not_know_is_invalid_client(bare_emu: EmulatorServer) -> None:
    info = authorized_user_info()
    bare_emu.admin.configure(invalid_clients=[info["client_id"]])
    creds = google.oauth2.credentials.Credentials.from_authorized_user_info(info)
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_client"):
        creds.refresh(make_request())
    status, _, raw = http_request(
        f"{bare_emu.url}/token",
        method="POST",
        body=urllib.parse.urlencode(
            {
                "grant_type": "refresh_token",
                "refresh_token": info["refresh_token"],
                "client_id": info["client_id"],
                "client_secret": info["client_secret"],
            }
        ).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (status, json.loads(raw)) == (
        401,
        {"error": "invalid_client", "error_description": "The OAuth client was not found."},
    )
    other = authorized_user_info(client_id="another-client.apps.googleusercontent.com")
    google.oauth2.credentials.Credentials.from_authorized_user_info(other).refresh(make_request())


def test_sts_refuses_a_subject_token_that_is_not_a_jwt(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    subject = tmp_path / "subject.jwt"
    path = write_external_account(tmp_path / "external.json", subject_token_file=subject)
    creds = google.auth.identity_pool.Credentials.from_file(str(path), scopes=[CLOUD_PLATFORM])
    creds.refresh(make_request())  # the well-formed token written with it passes
    subject.write_text("ya29.an-access-token-where-the-id-token-belongs")
    again = google.auth.identity_pool.Credentials.from_file(str(path), scopes=[CLOUD_PLATFORM])
    with pytest.raises(
        google.auth.exceptions.OAuthError, match=r"invalid_grant.*Unable to parse the ID Token"
    ):
        again.refresh(make_request())


def test_service_account_assertions_need_the_key_the_emulator_minted(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    unknown = google.oauth2.service_account.Credentials.from_service_account_file(
        str(
            write_service_account(
                tmp_path / "unknown.json",
                client_email="made-elsewhere@team-project.iam.gserviceaccount.com",
            )
        ),
        scopes=[CLOUD_PLATFORM],
    )
    with pytest.raises(google.auth.exceptions.RefreshError, match="Invalid JWT Signature"):
        unknown.refresh(make_request())
    minted = google.oauth2.service_account.Credentials.from_service_account_file(
        str(write_service_account(tmp_path / "minted.json", register_with=bare_emu.admin)),
        scopes=[CLOUD_PLATFORM],
    )
    minted.refresh(make_request())
    bare_emu.admin.configure(
        require_known_keys=False
    )  # the lenient switch, for keys made elsewhere
    unknown.refresh(make_request())


def test_the_pytest_plugin_switches_refusals_for_an_apps_tests(
    vertex_env_offline: OfflineVertex,
) -> None:
    emulator = vertex_env_offline.emulator
    emulator.refuse(OFFLINE_PROJECT, "BILLING_DISABLED")
    hello: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    with openai.OpenAI(max_retries=0) as client:  # the app's own client, from OPENAI_* variables
        with pytest.raises(openai.PermissionDeniedError) as err:
            client.chat.completions.create(model="google/gemini-2.5-flash", messages=hello)
        body = err.value.body
        assert isinstance(body, list)
        assert body[0]["error"]["details"][0]["reason"] == "BILLING_DISABLED"
        assert emulator.vertex_requests()[-1]["reason"] == "BILLING_DISABLED"
        emulator.allow()
        client.chat.completions.create(model="google/gemini-2.5-flash", messages=hello)

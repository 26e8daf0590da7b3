"""The one table of Google's refusals (vertex_env.core.refusal_table): reading Google's bodies in every shape,
the row each refusal lands on, and the fix with this principal and project filled in; and what the table fixed
in the classification of token errors (vertex_env.core.refusals)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from vertex_env.core import refusal_table as table
from vertex_env.core.refusal_table import (
    GoogleAnswer,
    Principal,
    Situation,
    advise,
    principal_of,
    read_answer,
    row_for,
)
from vertex_env.core.refusals import redact
from vertex_env.emulator import google_errors
from vertex_env.emulator.server import EmulatorServer

ME = Principal("user", "ada@example.com")
HERE = Situation(project="acme-prod", location="us-central1", principal=ME)


def test_a_list_wrapped_error_from_the_openai_compatible_path_is_read() -> None:
    # As Vertex answered on the OpenAI-compatible path (genkit-ai/genkit issue 4688).
    body = (
        b'[{"error": {"code": 404, "message": "Publisher Model `projects/740989871600/locations/'
        b"us-central1/publishers/google/models/gemini-3-pro-preview` was not found or your project does "
        b'not have access to it. Please ensure you are using a valid model version.", "status": "NOT_FOUND"}}]'
    )
    answer = read_answer(404, body)
    assert answer.wrapped
    assert answer.status_name == "NOT_FOUND"
    advice = advise(answer, HERE)
    assert advice.key == "MODEL_NOT_FOUND"
    assert "google/gemini-3-pro-preview" in advice.summary
    assert "`--location global`" in advice.fixes[0]


def test_the_error_info_reason_domain_metadata_and_help_links_are_read() -> None:
    body = google_errors.service_disabled("acme-prod", "aiplatform.googleapis.com")
    answer = read_answer(403, json.dumps([body]))
    assert (answer.reason, answer.domain) == ("SERVICE_DISABLED", "googleapis.com")
    assert answer.metadata["consumer"] == "projects/acme-prod"
    assert answer.links == (
        "https://console.developers.google.com/apis/api/aiplatform.googleapis.com/overview?project=acme-prod",
    )


@pytest.mark.parametrize(
    "body",
    [b"<!DOCTYPE html><html>404</html>", b"", b"[]", b"null", b'{"error": 3}'],
    ids=["html", "empty", "empty-list", "null", "odd"],
)
def test_a_body_that_is_no_google_error_leaves_only_the_status(body: bytes) -> None:
    assert read_answer(404, body) == GoogleAnswer(status=404, wrapped=body == b"[]" and False)


def test_an_oauth_body_is_read_as_its_error() -> None:
    answer = read_answer(
        401, b'{"error": "invalid_client", "error_description": "The OAuth client was deleted."}'
    )
    assert answer.oauth_error == "invalid_client"
    assert advise(answer).key == "invalid_client"


# What Google sends (the emulator's bodies, each quoted from Google's answers) → the row, and what the fix names.
CASES = {
    "SERVICE_DISABLED": (
        403,
        google_errors.service_disabled("acme-prod", "aiplatform.googleapis.com"),
        [
            "gcloud services enable aiplatform.googleapis.com --project acme-prod",
            "console.developers.google.com",
        ],
    ),
    "QUOTA_PROJECT_REQUIRED": (
        403,
        google_errors.quota_project_required("aiplatform.googleapis.com"),
        [
            "gcloud auth application-default set-quota-project acme-prod",
            "--quota-project acme-prod",
        ],
    ),
    "IAM_PERMISSION_DENIED": (
        403,
        google_errors.iam_permission_denied(
            "aiplatform.endpoints.predict",
            "projects/acme-prod/locations/us-central1/endpoints/openapi",
        ),
        [
            "gcloud projects add-iam-policy-binding acme-prod --member=user:ada@example.com "
            "--role=roles/aiplatform.user"
        ],
    ),
    "IAM_PERMISSION_DENIED (token creator)": (
        403,
        google_errors.generate_access_token_denied(),
        ["--member=user:ada@example.com --role=roles/iam.serviceAccountTokenCreator"],
    ),
    "USER_PROJECT_DENIED": (
        403,
        google_errors.user_project_denied("billing-proj", "aiplatform.googleapis.com"),
        [
            "gcloud projects add-iam-policy-binding billing-proj --member=user:ada@example.com "
            "--role=roles/serviceusage.serviceUsageConsumer"
        ],
    ),
    "CONSUMER_INVALID": (
        403,
        google_errors.consumer_invalid("My First Project", "aiplatform.googleapis.com"),
        ["'My First Project' is not a project id", "gcloud projects list"],
    ),
    "BILLING_DISABLED": (
        403,
        google_errors.billing_disabled("acme-prod", "aiplatform.googleapis.com"),
        ["gcloud billing projects link acme-prod --billing-account=ACCOUNT_ID"],
    ),
    "VPC_SERVICE_CONTROLS": (
        403,
        google_errors.vpc_service_controls("123456", "aiplatform.googleapis.com", "Xq9-uid"),
        ["VPC Service Controls administrator", "Xq9-uid", "user:ada@example.com"],
    ),
    "RESOURCE_EXHAUSTED": (
        429,
        google_errors.rate_limit_exceeded("acme-prod", "123456", "us-central1"),
        [
            "OnlinePredictionRequestsPerMinutePerProjectPerRegion",
            "https://console.cloud.google.com/iam-admin/quotas?project=acme-prod",
        ],
    ),
    "MODEL_NOT_FOUND": (
        404,
        google_errors.publisher_model_not_found("acme-prod", "us-central1", "google/gemini-9"),
        ["google/gemini-9", "`--location global`"],
    ),
    "ENDPOINT_NOT_FOUND": (
        404,
        google_errors.endpoint_not_found("123456", "us-central1", "42"),
        ["gcloud ai endpoints list --project acme-prod --region us-central1"],
    ),
    "UNAUTHENTICATED": (
        401,
        google_errors.unauthenticated("ACCESS_TOKEN_EXPIRED", "aiplatform.googleapis.com", "m"),
        ["clock", "gcloud auth application-default login"],
    ),
    "ACCESS_TOKEN_SCOPE_INSUFFICIENT": (
        403,
        google_errors.scope_insufficient("aiplatform.googleapis.com", "m"),
        ["https://www.googleapis.com/auth/cloud-platform"],
    ),
}


@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "list-wrapped"])
@pytest.mark.parametrize("key", sorted(CASES))
def test_each_refusal_gets_its_fix_with_this_principal_and_project(key: str, wrapped: bool) -> None:
    status, body, expected = CASES[key]
    raw = json.dumps([body] if wrapped else body).encode()
    advice = advise(read_answer(status, raw), HERE)
    assert advice.key == key
    text = advice.line()
    for piece in expected:
        assert piece in text
    assert advice.exit_code == (8 if status == 429 else 12)


def test_a_quota_project_configured_but_not_sent_says_export_cannot_send_it() -> None:
    answer = read_answer(403, google_errors.quota_project_required("aiplatform.googleapis.com"))
    advice = advise(
        answer, Situation(project="acme-prod", quota_project="billing-proj", principal=ME)
    )
    assert "x-goog-user-project: billing-proj" in advice.line()
    assert "vertex-env run --proxy" in advice.line()


def test_a_404_names_the_closest_catalog_models_and_the_publisher() -> None:
    catalog = ("google/gemini-2.5-flash", "google/gemini-2.5-pro", "google/text-embedding-005")
    answer = read_answer(
        404, google_errors.publisher_model_not_found("p", "us-central1", "gemini-2.5-flash")
    )
    bare = advise(answer, Situation(model="gemini-2.5-flash", catalog=catalog))
    assert "name it with its publisher: google/gemini-2.5-flash" in bare.fixes
    typo = advise(
        answer, Situation(model="google/gemini-2.5-flsh", location="us-central1", catalog=catalog)
    )
    assert any("closest models" in f and "google/gemini-2.5-flash" in f for f in typo.fixes)


def test_every_row_of_the_table_handles_its_own_sample() -> None:
    for row in table.TABLE:
        assert row_for(row.sample) is row, row.key


@pytest.mark.parametrize(
    ("kind", "info", "member"),
    [
        ("authorized_user", {"account": "ada@example.com"}, "user:ada@example.com"),
        ("authorized_user", {}, "user:EMAIL"),
        (
            "service_account",
            {"client_email": "sa@p.iam.gserviceaccount.com"},
            "serviceAccount:sa@p.iam.gserviceaccount.com",
        ),
        (
            "external_account",
            {
                "audience": "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/gh/providers/gh"
            },
            "principalSet://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/gh/*",
        ),
        (
            "external_account",
            {
                "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q",
                "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/"
                "serviceAccounts/ci@p.iam.gserviceaccount.com:generateAccessToken",
            },
            "serviceAccount:ci@p.iam.gserviceaccount.com",
        ),
        (
            "external_account_authorized_user",
            {
                "audience": "//iam.googleapis.com/locations/global/workforcePools/corp/providers/okta"
            },
            "principalSet://iam.googleapis.com/locations/global/workforcePools/corp/*",
        ),
    ],
)
def test_the_principal_is_named_as_iam_binds_it(
    kind: str, info: dict[str, str], member: str
) -> None:
    assert principal_of(kind, info).member == member


def test_an_impersonation_target_is_the_principal() -> None:
    assert principal_of(
        "authorized_user", {}, impersonate="t@p.iam.gserviceaccount.com"
    ).member == ("serviceAccount:t@p.iam.gserviceaccount.com")


def test_the_redactor_leaves_numbers_alone_and_still_hides_an_authorization_code() -> None:
    assert redact('{"code": 404, "message": "x"}') == '{"code": 404, "message": "x"}'
    assert "4/0AbCdEf" not in redact("code=4/0AbCdEfGhIjKlMn&state=1")


def test_vertex_locations_are_the_emulators() -> None:
    from vertex_env.config import values
    from vertex_env.emulator.catalog import VERTEX_LOCATIONS

    assert table.VERTEX_LOCATIONS == VERTEX_LOCATIONS
    # one list, the config layer's: the location check, the table and the emulator cannot drift apart
    assert table.VERTEX_LOCATIONS is VERTEX_LOCATIONS is values.VERTEX_LOCATIONS


# -- what the table exposed in the classification of token errors ---------------------------------------------


@pytest.mark.slow
def test_a_skewed_clock_is_named_as_the_cause_not_the_key(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    from vertex_env.emulator import write_service_account

    key = write_service_account(tmp_path / "sa.json", register_with=bare_emu.admin)
    bare_emu.admin.advance_clock(
        7200
    )  # Google's clock two hours ahead of ours: our assertion looks stale
    result = run_cli("token", "--credentials", str(key), "--project", "test-project")
    assert result.returncode == 12, result.stderr
    assert "short-lived token" in result.stderr
    assert "clock" in result.stderr and "the key itself is fine" in result.stderr
    assert "create a new key" not in result.stderr


@pytest.mark.slow
def test_an_sts_audience_mismatch_is_a_configuration_error_not_a_revocation(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    from vertex_env.emulator import write_external_account

    path = write_external_account(tmp_path / "ext.json", subject_token_file=tmp_path / "subject")
    bare_emu.admin.fault("token", error="audience_mismatch")
    result = run_cli("token", "--credentials", str(path), "--project", "test-project")
    assert result.returncode == 12, (
        result.stderr
    )  # not 7: a systemd unit must not stop as for a revocation
    assert "configuration error, not a revoked credential" in result.stderr
    assert "revoked or has expired" not in result.stderr


@pytest.mark.slow
def test_an_aws_metadata_refusal_is_local_not_google(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    aws = {
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/aws/providers/aws",
        "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
        "token_url": "https://sts.googleapis.com/v1/token",
        "credential_source": {
            "environment_id": "aws1",
            "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
            "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
            "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
        },
    }
    path = tmp_path / "aws.json"
    path.write_text(json.dumps(aws))
    # VERTEX_ENV_EMULATOR_HOST sends 169.254.169.254 to the emulator, which has no AWS metadata: a 404 there.
    result = run_cli("token", "--credentials", str(path), "--project", "test-project")
    assert result.returncode == 5, result.stderr
    assert "not Google's answer" in result.stderr
    assert "Google refused" not in result.stderr


@pytest.mark.slow
def test_a_metadata_server_refusal_keeps_its_whole_reason(
    bare_emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = (
        "Your Kubernetes service account (default/app) is not annotated with a target Google service account, "
        "which is a requirement for using Workload Identity. Please add the iam.gke.io/gcp-service-account "
        "annotation to the Kubernetes service account."
    )
    monkeypatch.delenv("NO_GCE_CHECK", raising=False)
    monkeypatch.setenv("GCE_METADATA_HOST", "metadata.google.internal")
    # The probe answers; the service account's info, asked next, gets the refusal.
    bare_emu.admin.faults(
        [
            {"target": "metadata", "delay": 0.001},
            {"target": "metadata", "status": 404, "body": reason, "count": 5},
        ]
    )
    result = run_cli("token", "--project", "test-project")
    assert result.returncode == 12, result.stderr
    assert "the metadata server refused a token" in result.stderr
    assert (
        "iam.gke.io/gcp-service-account annotation to the Kubernetes service account"
        in result.stderr
    )


def test_the_docs_show_the_table_as_it_is() -> None:
    readme = (Path(__file__).resolve().parent.parent / "docs" / "check.md").read_text(
        encoding="utf-8"
    )
    start = readme.index("<!-- refusals table:")
    start = readme.index("\n", start) + 1
    end = readme.index("<!-- end of the refusals table -->")
    assert readme[start:end] == table.readme_section(), (
        "docs/check.md's 'When Vertex says no' table differs from vertex_env.core.refusal_table: "
        "paste readme_section()'s output between its markers"
    )


@pytest.mark.slow
def test_a_subject_token_that_is_no_jwt_is_a_configuration_error(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    from vertex_env.emulator import write_external_account

    path = write_external_account(tmp_path / "ext.json", subject_token_file=tmp_path / "subject")
    (tmp_path / "subject").write_text(
        "not-a-jwt"
    )  # e.g. a credential_source file holding the wrong thing
    result = run_cli("token", "--credentials", str(path), "--project", "test-project")
    assert result.returncode == 12, result.stderr
    assert "could not read the subject token as an OIDC ID token" in result.stderr
    assert "revoked or has expired" not in result.stderr

"""`vertex-env check` against the emulator: the happy path (one real request, the principal, project and location
named, no token printed), each refusal Google sends (non-zero exit, the fix with this principal and project),
`--json`, `--no-call` (nothing sent to Vertex), and `--via` against a running `serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import http, run_cli, wait_for

from vertex_env.core.refusal_table import DEFAULT_MODEL
from vertex_env.emulator import write_service_account
from vertex_env.emulator.credfiles import DEFAULT_ACCOUNT
from vertex_env.emulator.server import EmulatorServer

pytestmark = pytest.mark.slow  # each test runs the CLI in a subprocess

USER = f"user:{DEFAULT_ACCOUNT}"


def _rows(stdout: str) -> dict[str, dict[str, Any]]:
    document = json.loads(stdout)
    return {row["name"]: row for row in document["rows"]}


def test_the_happy_path_makes_one_request_and_names_who_where_without_the_token(
    emu: EmulatorServer,
) -> None:
    result = run_cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"principal {USER}" in out
    assert "project test-project" in out and "location us-central1" in out
    assert f"POST …/chat/completions {DEFAULT_MODEL} → HTTP 200" in out
    sent = [r for r in emu.admin.vertex_requests() if r.get("operation") != "catalog"]
    assert len(sent) == 1
    assert (sent[0]["model"], sent[0]["project"], sent[0]["status"]) == (
        DEFAULT_MODEL,
        "test-project",
        200,
    )
    token = run_cli("token").stdout.strip()  # the same token, from the cache
    assert token and token not in out + result.stderr
    assert "ya29." not in out + result.stderr


def test_json_gives_the_same_rows_as_one_document(emu: EmulatorServer) -> None:
    result = run_cli("check", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is True and document["exit_code"] == 0
    rows = _rows(result.stdout)
    assert list(rows) == ["credential", "token", "base url", "request"]
    assert {row["state"] for row in rows.values()} <= {"ok", "warn"}
    assert rows["credential"]["details"]["principal"] == USER
    assert rows["base url"]["details"]["location_known"] is True


def test_no_call_sends_nothing_to_vertex(emu: EmulatorServer) -> None:
    result = run_cli("check", "--no-call", "--json")
    assert result.returncode == 0, result.stderr
    assert _rows(result.stdout)["request"]["state"] == "skip"
    assert emu.admin.vertex_requests() == []
    stats = emu.admin.stats()
    assert stats["requests"]["chat"] == 0 and stats["chat_ok"] == 0


def test_an_embedding_model_is_checked_at_embeddings(emu: EmulatorServer) -> None:
    result = run_cli("check", "--model", "google/text-embedding-005")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "POST …/embeddings google/text-embedding-005 → HTTP 200" in result.stdout


def test_a_disabled_api_exits_12_with_the_command_for_this_project(emu: EmulatorServer) -> None:
    emu.admin.configure(disabled_projects=["test-project"])
    result = run_cli("check")
    assert result.returncode == 12, result.stdout + result.stderr
    assert (
        "gcloud services enable aiplatform.googleapis.com --project test-project" in result.stdout
    )
    assert "Google said: Vertex AI API has not been used in project test-project" in result.stdout


# Each refusal the emulator answers as Google does (switched on per project), and what the fix must name for
# this principal (the ADC file's account) and project. USER_PROJECT_DENIED needs x-goog-user-project, which
# only the proxy sends: see the --via test below.
REFUSALS: dict[str, tuple[int, list[str]]] = {
    "SERVICE_DISABLED": (
        12,
        [
            "gcloud services enable aiplatform.googleapis.com --project test-project",
            "console.developers.google.com/apis/api/aiplatform.googleapis.com/overview?project=test-project",
        ],
    ),
    "IAM_PERMISSION_DENIED": (
        12,
        [
            f"gcloud projects add-iam-policy-binding test-project --member={USER} "
            "--role=roles/aiplatform.user"
        ],
    ),
    "QUOTA_PROJECT_REQUIRED": (
        12,
        [
            "gcloud auth application-default set-quota-project test-project",
            "--quota-project test-project",
        ],
    ),
    "CONSUMER_INVALID": (
        12,
        ["'test-project' is not a project id Google knows", "gcloud projects list"],
    ),
    "BILLING_DISABLED": (
        12,
        ["gcloud billing projects link test-project --billing-account=ACCOUNT_ID"],
    ),
    "VPC_SERVICE_CONTROLS": (12, ["VPC Service Controls administrator", USER]),
    "RESOURCE_EXHAUSTED": (
        8,
        ["https://console.cloud.google.com/iam-admin/quotas?project=test-project"],
    ),
}


@pytest.mark.parametrize("key", sorted(REFUSALS))
def test_each_refusal_exits_non_zero_with_the_fix_for_this_principal_and_project(
    emu: EmulatorServer, key: str
) -> None:
    code, expected = REFUSALS[key]
    emu.admin.refuse("test-project", key)  # type: ignore[arg-type]
    result = run_cli("check", "--json")
    assert result.returncode == code, result.stdout + result.stderr
    request = _rows(result.stdout)["request"]
    assert request["state"] == "fail" and request["exit_code"] == code
    assert request["details"]["row"] == key
    assert (
        request["details"]["wrapped_in_list"] is True
    )  # as Vertex's OpenAI-compatible path answers
    text = request["text"] + " " + " ".join(request["fix"])
    for piece in expected:
        assert piece in text
    printed = run_cli("check")
    assert printed.returncode == code
    assert "fix: " in printed.stdout and "Google said: " in printed.stdout


def test_a_misspelt_model_names_the_closest_catalog_models(emu: EmulatorServer) -> None:
    model = "google/gemini-2.5-flsh"
    result = run_cli("check", "--model", model)
    assert result.returncode == 12, result.stdout + result.stderr
    assert f"Vertex does not serve {model} in us-central1" in result.stdout
    assert "closest models in the Model Garden catalog: google/gemini-2.5-flash" in result.stdout


def test_a_model_served_only_in_global_says_to_try_global(emu: EmulatorServer) -> None:
    result = run_cli("check", "--model", "google/gemini-3-pro-preview")
    assert result.returncode == 12, result.stdout + result.stderr
    assert "try another location: `--location global`" in result.stdout
    assert (
        run_cli(
            "check", "--model", "google/gemini-3-pro-preview", "--location", "global"
        ).returncode
        == 0
    )


def test_a_model_without_its_publisher_says_so(emu: EmulatorServer) -> None:
    result = run_cli("check", "--model", "gemini-2.5-flash")
    assert result.returncode == 12, result.stdout + result.stderr
    assert "name it with its publisher: google/gemini-2.5-flash" in result.stdout


def test_a_refused_token_is_dropped_from_the_cache_so_the_next_command_mints(
    emu: EmulatorServer,
) -> None:
    first = run_cli("token").stdout.strip()
    emu.admin.expire()  # Google no longer accepts it; the cache still says it has an hour
    result = run_cli("check")
    assert result.returncode == 12, result.stdout + result.stderr
    assert "served from the cache" in result.stdout
    assert "ACCESS_TOKEN_EXPIRED" in result.stdout and "clock" in result.stdout
    second = run_cli("token").stdout.strip()
    assert second and second != first


def test_a_service_account_is_named_as_such(emu: EmulatorServer, tmp_path: Path) -> None:
    key = write_service_account(tmp_path / "sa.json", register_with=emu.admin)
    emu.admin.refuse("test-project", "IAM_PERMISSION_DENIED")
    result = run_cli("check", "--credentials", str(key))
    assert result.returncode == 12, result.stdout + result.stderr
    assert (
        "--member=serviceAccount:emulated-sa@emulated-project.iam.gserviceaccount.com"
        in result.stdout
    )


def test_no_credentials_fail_the_credential_row_with_its_exit_code(
    bare_emu: EmulatorServer,
) -> None:
    result = run_cli("check", "--project", "test-project", "--json")
    assert result.returncode == 4, result.stdout + result.stderr
    rows = _rows(result.stdout)
    assert rows["credential"]["state"] == "fail"
    assert [rows[n]["state"] for n in ("token", "base url", "request")] == ["skip"] * 3
    assert bare_emu.admin.vertex_requests() == []


def test_an_unknown_location_is_a_warning(emu: EmulatorServer) -> None:
    # a location Vertex does not serve is refused before check runs (tests/test_config.py) unless a custom
    # host (Private Service Connect, a proxy) may serve it: then check warns
    result = run_cli(
        "check",
        "--location",
        "europe-west99",
        "--host",
        "vertex.psc.example",
        "--no-call",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    row = _rows(result.stdout)["base url"]
    assert row["state"] == "warn" and "`--location global`" in row["fix"][0]


# -- --via: a running serve, as an app sees it -------------------------------------------------------------------


def _serve(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env_file = tmp_path / "proxy.env"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vertex_env", "serve", "--write-env", str(env_file), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: env_file.exists() and "OPENAI_API_KEY" in env_file.read_text(), 20, "serve")
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    return proc, {k: v.strip("'\"") for k, v in values.items()}


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    _out, err = proc.communicate(timeout=30)
    return err


def test_via_checks_serve_as_an_app_would(emu: EmulatorServer, tmp_path: Path) -> None:
    proc, values = _serve(tmp_path)
    try:
        env = {**os.environ, "OPENAI_API_KEY": values["OPENAI_API_KEY"]}
        result = run_cli("check", "--via", values["OPENAI_BASE_URL"], "--json", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        rows = _rows(result.stdout)
        assert rows["serve"]["state"] == "ok" and rows["request"]["state"] == "ok"
        wrong = run_cli(
            "check", "--via", values["OPENAI_BASE_URL"], env={**env, "OPENAI_API_KEY": "nope"}
        )
        assert wrong.returncode == 2, wrong.stdout + wrong.stderr
        assert "serve refused the key (invalid_api_key)" in wrong.stdout
    finally:
        _stop(proc)


def test_via_reads_the_refusal_serve_passes_through(emu: EmulatorServer, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("k" * 40)
    key_file.chmod(0o600)
    emu.admin.refuse("billing-proj", "USER_PROJECT_DENIED")
    proc, values = _serve(tmp_path, "--key-file", str(key_file), "--quota-project", "billing-proj")
    try:
        result = run_cli("check", "--via", values["OPENAI_BASE_URL"], "--key-file", str(key_file))
        assert result.returncode == 12, result.stdout + result.stderr
        assert "USER_PROJECT_DENIED" in result.stdout
        assert "gcloud projects add-iam-policy-binding billing-proj" in result.stdout
    finally:
        _stop(proc)


# -- the operator sees it: a refusal through serve --------------------------------------------------------------


def _chat(values: dict[str, str]) -> tuple[int, bytes]:
    body = json.dumps(
        {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    return http(
        values["OPENAI_BASE_URL"] + "/chat/completions",
        method="POST",
        body=body,
        headers={
            "Authorization": f"Bearer {values['OPENAI_API_KEY']}",
            "Content-Type": "application/json",
        },
    )[::2]


def test_a_refusal_through_serve_reaches_the_client_untouched_and_the_log_with_its_fix(
    emu: EmulatorServer, tmp_path: Path
) -> None:
    emu.admin.refuse("test-project", "SERVICE_DISABLED")
    proc, values = _serve(tmp_path, "--log-format", "json")
    try:
        answers = [_chat(values) for _ in range(3)]
    finally:
        err = _stop(proc)
    status, body = answers[0]
    assert status == 403
    sent = json.loads(body)
    assert isinstance(sent, list)  # Google's list-wrapped body, as it came
    assert sent[0]["error"]["details"][0]["reason"] == "SERVICE_DISABLED"
    assert {a for a in answers} == {answers[0]}
    records = [json.loads(line) for line in err.splitlines() if line.strip()]
    refused = [r for r in records if r["event"] == "upstream_refused"]
    assert len(refused) == 1  # rate-limited: one line for three refusals
    assert refused[0]["upstream_reason"] == "SERVICE_DISABLED"
    assert (
        "`gcloud services enable aiplatform.googleapis.com --project test-project`"
        in refused[0]["fix"]
    )
    assert "gcloud services enable" in refused[0]["message"]
    requests = [r for r in records if r["event"] == "request"]
    assert [r["upstream_reason"] for r in requests] == ["SERVICE_DISABLED"] * 3
    assert [r["status"] for r in requests] == [403] * 3
    status_run = run_cli("status")
    assert "HTTP 403, SERVICE_DISABLED" in status_run.stderr
    assert "`vertex-env check` shows why" in status_run.stderr


def test_a_token_refused_through_the_proxy_is_dropped_from_the_shared_cache(
    emu: EmulatorServer, tmp_path: Path
) -> None:
    proc, values = _serve(tmp_path)
    try:
        emu.admin.fault("chat", status=401, count=2)  # the request and its one retry
        status, _body = _chat(values)
        issued = emu.admin.stats()["tokens_issued"]
    finally:
        err = _stop(proc)
    assert status == 401
    assert "HTTP 401" in err and "clock" in err
    run_cli("token")
    assert (
        emu.admin.stats()["tokens_issued"] == issued + 1
    )  # minted: the refused token was not served


@pytest.mark.parametrize(
    ("project", "named"),
    [("123456789012", "a project number"), ("My First Project", "a project's display name")],
)
def test_a_project_number_or_display_name_is_named_as_such(
    emu: EmulatorServer, project: str, named: str
) -> None:
    result = run_cli("check", "--project", project)
    assert result.returncode == 2, result.stdout + result.stderr
    assert named in result.stderr and "gcloud projects list" in result.stderr
    assert emu.admin.vertex_requests() == []


def test_impersonation_without_token_creator_names_the_binding_to_add(emu: EmulatorServer) -> None:
    target = "target-sa@test-project.iam.gserviceaccount.com"
    emu.admin.configure(impersonation_denied=[target])
    result = run_cli("check", "--impersonate", target)
    assert result.returncode == 12, result.stdout + result.stderr
    assert (
        f"gcloud iam service-accounts add-iam-policy-binding {target} --member={USER} "
        "--role=roles/iam.serviceAccountTokenCreator"
    ) in result.stdout
    assert emu.admin.vertex_requests() == []


def test_a_deleted_oauth_client_says_to_log_in_again(emu: EmulatorServer) -> None:
    from vertex_env.emulator.credfiles import DEFAULT_CLIENT_ID

    emu.admin.configure(invalid_clients=[DEFAULT_CLIENT_ID])
    result = run_cli("check", "--json")
    assert result.returncode == 12, result.stdout + result.stderr
    token = _rows(result.stdout)["token"]
    assert token["state"] == "fail"
    assert "invalid_client" in token["text"]
    assert any("gcloud auth application-default login" in fix for fix in token["fix"])


def test_run_proxy_logs_the_fix_with_the_project_of_its_base_url(
    emu: EmulatorServer, tmp_path: Path
) -> None:
    emu.admin.refuse("test-project", "IAM_PERMISSION_DENIED")
    app = (
        "import json, os, urllib.request\n"
        "request = urllib.request.Request(os.environ['OPENAI_BASE_URL'] + '/chat/completions', method='POST',\n"
        "    data=json.dumps({'model': 'google/gemini-2.5-flash', 'messages': []}).encode(),\n"
        "    headers={'Authorization': 'Bearer ' + os.environ['OPENAI_API_KEY']})\n"
        "try:\n    urllib.request.urlopen(request)\nexcept urllib.error.HTTPError as err:\n"
        "    print(err.code, json.loads(err.read())[0]['error']['details'][0]['reason'])\n"
    )
    result = run_cli("run", "--proxy", "--", sys.executable, "-c", app)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "403 IAM_PERMISSION_DENIED"  # Google's answer, untouched
    assert (
        f"`gcloud projects add-iam-policy-binding test-project --member={USER} "
        "--role=roles/aiplatform.user`" in result.stderr
    )

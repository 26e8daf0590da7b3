"""The emulator's Vertex surfaces beyond chat: the Model Garden catalog, self-deployed endpoints, the HTML 404 of
`…/endpoints/openapi/models`, and the record of where each Vertex request went.

Over real HTTP (urllib, the real openai SDK) against the emulator on loopback; tokens come from real google-auth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import google.oauth2.credentials
import openai
import pytest
from conftest import http as http_request

from vertex_env.core.transport import make_request
from vertex_env.emulator import EmulatorAdminError, EmulatorServer, authorized_user_info

PROJECT = "team-project"


def user_token() -> str:
    creds = google.oauth2.credentials.Credentials.from_authorized_user_info(authorized_user_info())
    creds.refresh(make_request())
    assert isinstance(creds.token, str)
    return creds.token


def get(url: str, token: str | None, **headers: str) -> tuple[int, dict[str, str], Any]:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    status, got_headers, raw = http_request(url, headers={**auth, **headers})
    try:
        return status, got_headers, json.loads(raw)
    except ValueError:
        return status, got_headers, raw.decode()


def catalog_url(emu: EmulatorServer, version: str = "v1beta1", query: str = "") -> str:
    return f"{emu.url}/{version}/publishers/google/models" + (f"?{query}" if query else "")


def all_pages(
    emu: EmulatorServer, token: str, version: str, page_size: int
) -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = []
    next_token = ""
    pages = 0
    while True:
        query = f"pageSize={page_size}" + (f"&pageToken={next_token}" if next_token else "")
        status, _, body = get(catalog_url(emu, version, query), token)
        assert status == 200, body
        assert len(body["publisherModels"]) <= page_size
        models += body["publisherModels"]
        pages += 1
        next_token = body.get("nextPageToken", "")
        if not next_token:
            break
    assert pages == -(-len(models) // page_size)
    return models


# -- the Model Garden catalog --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1beta1", "v1"])
def test_the_catalog_pages_through_every_model_in_googles_shape(
    bare_emu: EmulatorServer, version: str
) -> None:
    token = user_token()
    models = all_pages(bare_emu, token, version, page_size=4)
    ids = [m["name"].removeprefix("publishers/google/models/") for m in models]
    assert ids == [entry["id"] for entry in bare_emu.admin.catalog()]
    assert {"gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash-001"} <= set(ids)
    assert {"gemini-3-pro-preview", "text-embedding-005"} <= set(ids)
    flash = next(m for m in models if m["name"] == "publishers/google/models/gemini-2.5-flash")
    assert flash == {
        "name": "publishers/google/models/gemini-2.5-flash",
        "versionId": "001",
        "openSourceCategory": "PROPRIETARY",
        "launchStage": "GA",
        "versionState": "VERSION_STATE_STABLE",
        "publisherModelTemplate": "projects/{project}/locations/{location}/publishers/google/models/"
        "gemini-2.5-flash@001",
    }
    preview = next(m for m in models if m["name"].endswith("/gemini-3-pro-preview"))
    assert preview["launchStage"] == "PUBLIC_PREVIEW"


def test_without_a_page_size_one_page_is_not_the_whole_catalog(bare_emu: EmulatorServer) -> None:
    token = user_token()
    status, _, first = get(catalog_url(bare_emu), token)
    assert status == 200
    assert len(first["publisherModels"]) == 10 < len(bare_emu.admin.catalog())
    status, _, rest = get(catalog_url(bare_emu, query=f"pageToken={first['nextPageToken']}"), token)
    assert status == 200 and "nextPageToken" not in rest
    assert len(first["publisherModels"]) + len(rest["publisherModels"]) == len(
        bare_emu.admin.catalog()
    )


@pytest.mark.parametrize(
    "query",
    ["pageSize=-1", "pageSize=ten", "pageToken=not-a-token", "pageToken=eyJvIjoxLCJsIjoieCJ9"],
)
def test_a_bad_page_size_or_token_is_invalid_argument(bare_emu: EmulatorServer, query: str) -> None:
    status, _, body = get(catalog_url(bare_emu, query=query), user_token())
    assert status == 400
    assert body["error"]["status"] == "INVALID_ARGUMENT"


def test_the_catalog_needs_a_token_and_gets_one_model(bare_emu: EmulatorServer) -> None:
    status, _, body = get(catalog_url(bare_emu), None)
    assert (status, body["error"]["status"]) == (401, "UNAUTHENTICATED")
    token = user_token()
    status, _, model = get(catalog_url(bare_emu) + "/gemini-2.5-pro", token)
    assert (status, model["name"]) == (200, "publishers/google/models/gemini-2.5-pro")
    status, _, body = get(catalog_url(bare_emu, "v1") + "/gemini-0-nonexistent", token)
    assert status == 404
    assert body["error"]["status"] == "NOT_FOUND"
    assert "publishers/google/models/gemini-0-nonexistent" in body["error"]["message"]


def test_the_admin_api_edits_the_catalog_and_where_models_are_served(
    bare_emu: EmulatorServer,
) -> None:
    admin = bare_emu.admin
    seeded = {entry["id"]: entry for entry in admin.catalog()}
    assert seeded["gemini-3-pro-preview"]["served_in"] == ["global"]
    assert "global" not in seeded["text-embedding-005"]["served_in"]
    assert seeded["gemini-2.5-flash"]["served_in"][:2] == ["global", "us-central1"]

    catalog = admin.put_model("gemini-9-ultra", locations=["global", "europe-west4"])
    added = next(entry for entry in catalog if entry["id"] == "gemini-9-ultra")
    assert added["served_in"] == ["global", "europe-west4"]
    token = user_token()
    listed = all_pages(bare_emu, token, "v1beta1", page_size=100)
    assert "publishers/google/models/gemini-9-ultra" in [m["name"] for m in listed]

    admin.remove_model("gemini-2.0-flash")
    names = [m["name"] for m in all_pages(bare_emu, token, "v1beta1", page_size=100)]
    assert "publishers/google/models/gemini-2.0-flash" not in names
    assert [e["id"] for e in admin.reset_catalog()] == list(seeded)

    with pytest.raises(EmulatorAdminError, match="not locations Vertex serves"):
        admin.put_model("gemini-x", locations=["mars-north1"])
    with pytest.raises(EmulatorAdminError, match="no publisher prefix"):
        admin.put_model("google/gemini-x")
    with pytest.raises(EmulatorAdminError, match="no catalog model"):
        admin.remove_model("gemini-never-there")


# -- self-deployed endpoints ------------------------------------------------------------------------------


def endpoints_url(emu: EmulatorServer, project: str, location: str, query: str = "") -> str:
    return f"{emu.url}/v1/projects/{project}/locations/{location}/endpoints" + (
        f"?{query}" if query else ""
    )


def test_the_endpoints_list_shows_the_projects_endpoints_in_a_location(
    bare_emu: EmulatorServer,
) -> None:
    admin = bare_emu.admin
    llama = admin.deploy_endpoint(
        "llama-3-70b",
        location="us-east5",
        model="meta-llama/Llama-3.3-70B-Instruct",
        project=PROJECT,
    )
    gemma = admin.deploy_endpoint(
        "gemma-2-9b-it",
        location="us-east5",
        model="google/gemma-2-9b-it",
        project=PROJECT,
        endpoint_id="1234567890",
    )
    admin.deploy_endpoint("elsewhere", location="europe-west4", model="m", project=PROJECT)
    admin.deploy_endpoint("not-ours", location="us-east5", model="m", project="other-project")
    assert len(llama["id"]) == 19 and llama["id"].isdigit()

    token = user_token()
    status, _, body = get(endpoints_url(bare_emu, PROJECT, "us-east5"), token)
    assert status == 200, body
    number = bare_emu.state.project_number(PROJECT)
    assert number.isdigit() and number != PROJECT
    assert [e["name"] for e in body["endpoints"]] == [
        f"projects/{number}/locations/us-east5/endpoints/{llama['id']}",
        f"projects/{number}/locations/us-east5/endpoints/1234567890",
    ]
    assert [e["displayName"] for e in body["endpoints"]] == ["llama-3-70b", "gemma-2-9b-it"]
    deployed = body["endpoints"][1]["deployedModels"][0]
    assert deployed["displayName"] == gemma["model"]
    assert deployed["model"].startswith(f"projects/{number}/locations/us-east5/models/")
    assert body["endpoints"][1]["trafficSplit"] == {deployed["id"]: 100}
    assert body["endpoints"][1]["createTime"].endswith("Z")
    assert "nextPageToken" not in body

    # The same project by its number lists the same endpoints, one page at a time.
    status, _, first = get(endpoints_url(bare_emu, number, "us-east5", "pageSize=1"), token)
    assert status == 200 and len(first["endpoints"]) == 1
    status, _, second = get(
        endpoints_url(
            bare_emu, number, "us-east5", f"pageSize=1&pageToken={first['nextPageToken']}"
        ),
        token,
    )
    assert status == 200 and "nextPageToken" not in second
    assert [first["endpoints"][0]["displayName"], second["endpoints"][0]["displayName"]] == [
        "llama-3-70b",
        "gemma-2-9b-it",
    ]
    # A page token of one list is not a page token of another.
    status, _, _ = get(
        endpoints_url(bare_emu, PROJECT, "europe-west4", f"pageToken={first['nextPageToken']}"),
        token,
    )
    assert status == 400
    status, _, empty = get(endpoints_url(bare_emu, PROJECT, "asia-east1"), token)
    assert (status, empty) == (200, {"endpoints": []})
    assert get(endpoints_url(bare_emu, PROJECT, "us-east5"), None)[0] == 401


def test_chat_and_embeddings_on_a_known_endpoint_id_unknown_ids_are_404(
    bare_emu: EmulatorServer,
) -> None:
    endpoint = bare_emu.admin.deploy_endpoint(
        "gemma", location="us-central1", model="google/gemma-2-9b-it", project=PROJECT
    )
    token = user_token()
    base = bare_emu.chat_base_url(PROJECT, "us-central1", endpoint["id"])
    with openai.OpenAI(base_url=base, api_key=token, max_retries=0) as client:
        answer = client.chat.completions.create(
            model="google/gemma-2-9b-it", messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.choices[0].message.content == "Emulated reply to: hi"
        streamed = client.chat.completions.create(
            model="google/gemma-2-9b-it",
            messages=[{"role": "user", "content": "stream please"}],
            stream=True,
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        vectors = client.embeddings.create(model="google/gemma-2-9b-it", input="hello")
        assert len(vectors.data[0].embedding) == 768

    for wrong in (
        bare_emu.chat_base_url(PROJECT, "us-central1", "999"),  # no such endpoint
        bare_emu.chat_base_url(PROJECT, "europe-west4", endpoint["id"]),  # not in this location
        bare_emu.chat_base_url("other-project", "us-central1", endpoint["id"]),  # nor this project
    ):
        with (
            openai.OpenAI(base_url=wrong, api_key=token, max_retries=0) as client,
            pytest.raises(openai.NotFoundError),
        ):
            client.chat.completions.create(
                model="google/gemma-2-9b-it", messages=[{"role": "user", "content": "hi"}]
            )
    # Without a token the answer is 401, not whether the endpoint exists.
    with (
        openai.OpenAI(
            base_url=bare_emu.chat_base_url(PROJECT, "us-central1", "999"),
            api_key="ya29.not-issued",
            max_retries=0,
        ) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])


def test_the_admin_api_refuses_endpoints_vertex_could_not_have(bare_emu: EmulatorServer) -> None:
    admin = bare_emu.admin
    for kwargs, message in (
        ({"location": "global"}, "not global"),
        ({"location": "mars-north1"}, "region Vertex serves"),
        ({"location": "us-central1", "endpoint_id": "0123"}, "numeric"),
        ({"location": "us-central1", "endpoint_id": "abc"}, "numeric"),
        ({"location": "us-central1", "project": "My First Project"}, "not a project id"),
    ):
        with pytest.raises(EmulatorAdminError, match=message):
            admin.deploy_endpoint("x", model="m", **kwargs)
    admin.deploy_endpoint("x", location="us-central1", model="m", endpoint_id="42")
    with pytest.raises(EmulatorAdminError, match="exists already"):
        admin.deploy_endpoint("y", location="us-central1", model="m", endpoint_id="42")
    assert admin.undeploy_endpoint("42") == 1
    assert admin.endpoints() == []


# -- the route Vertex does not have ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["/models", "/models/google/gemini-2.5-flash"])
def test_models_under_the_openai_base_url_is_googles_html_404(
    bare_emu: EmulatorServer, suffix: str
) -> None:
    url = bare_emu.chat_base_url(PROJECT, "global") + suffix
    status, headers, body = get(url, user_token())
    assert status == 404
    assert headers["Content-Type"] == "text/html; charset=UTF-8"
    assert body.startswith("<!DOCTYPE html>\n<html lang=en>")
    assert "<title>Error 404 (Not Found)!!1</title>" in body
    path = url.removeprefix(bare_emu.url)
    assert f"The requested URL <code>{path}</code> was not found on this server." in body
    assert get(url, None)[0] == 404  # before any credential check


def test_the_openai_sdk_cannot_list_models_on_vertex(bare_emu: EmulatorServer) -> None:
    base = bare_emu.chat_base_url(PROJECT, "us-central1")
    with (
        openai.OpenAI(base_url=base, api_key=user_token(), max_retries=0) as client,
        pytest.raises(openai.NotFoundError) as err,
    ):
        client.models.list()
    assert err.value.response.headers["content-type"].startswith("text/html")


# -- where each request went ---------------------------------------------------------------------------


def test_each_vertex_request_is_recorded_with_where_it_went_never_the_token(
    bare_emu: EmulatorServer,
) -> None:
    endpoint = bare_emu.admin.deploy_endpoint(
        "llama-3-70b", location="us-east5", model="meta/llama", project=PROJECT
    )
    token = user_token()
    routes = [
        (bare_emu.chat_base_url(PROJECT, "global"), "google/gemini-3-pro-preview"),
        (
            bare_emu.chat_base_url(PROJECT, "europe-west4", version="v1beta1"),
            "google/gemini-2.5-flash",
        ),
        (bare_emu.chat_base_url(PROJECT, "us-east5", endpoint["id"]), "llama-3-70b"),
    ]
    for base, model in routes:
        with openai.OpenAI(
            base_url=base,
            api_key=token,
            max_retries=0,
            default_headers={"x-goog-user-project": "billing-project"},
        ) as client:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    get(endpoints_url(bare_emu, PROJECT, "us-east5"), token)

    records = bare_emu.admin.vertex_requests()
    chats = [r for r in records if r["operation"] == "chat/completions"]
    assert [(r["google_host"], r["location"], r["endpoint"], r["model"]) for r in chats] == [
        ("aiplatform.googleapis.com", "global", "openapi", "google/gemini-3-pro-preview"),
        (
            "europe-west4-aiplatform.googleapis.com",
            "europe-west4",
            "openapi",
            "google/gemini-2.5-flash",
        ),
        ("us-east5-aiplatform.googleapis.com", "us-east5", endpoint["id"], "llama-3-70b"),
    ]
    assert [r["version"] for r in chats] == ["v1", "v1beta1", "v1"]
    assert {r["project"] for r in chats} == {PROJECT}
    assert {r["user_project"] for r in chats} == {"billing-project"}
    assert {r["status"] for r in chats} == {200}
    assert chats[2]["endpoint_display_name"] == "llama-3-70b"
    assert chats[0]["host"] == bare_emu.host_port
    assert records[-1]["operation"] == "endpoints" and records[-1]["location"] == "us-east5"
    assert token not in json.dumps(records)
    assert bare_emu.admin.requests()["vertex"] == records
    assert bare_emu.admin.vertex_requests(limit=1) == records[-1:]


def test_a_refused_request_is_recorded_with_its_reason(
    bare_emu: EmulatorServer, tmp_path: Path
) -> None:
    base = bare_emu.chat_base_url(PROJECT, "us-central1")
    with (
        openai.OpenAI(base_url=base, api_key="ya29.never-issued", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "x"}]
        )
    (record,) = bare_emu.admin.vertex_requests()
    assert (record["status"], record["reason"], record["model"]) == (
        401,
        "ACCESS_TOKEN_TYPE_UNSUPPORTED",
        "google/gemini-2.5-flash",
    )
    assert "ya29.never-issued" not in json.dumps(record)

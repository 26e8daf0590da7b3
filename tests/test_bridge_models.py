"""`serve` as the bridge for OpenAI-compatible apps (issue 19, parts 2 and 3): `GET /models` answered by the
proxy in OpenAI's shape (the profile's models, Google's Model Garden catalog, the location's self-deployed
endpoints), cached and served from the last good copy; one base URL for every model (a request's `model` picks
its location and endpoint).

Real components: the emulator serves Google's catalog (paged), the endpoints list and chat at a deployed
endpoint ID; the openai SDK is the client; the proxy runs in-process (BackgroundProxy) or as `vertex-env serve`
reached from a network namespace (a container network).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import http, run_cli, wait_for
from netns import ContainerNetwork
from test_bridge_listen import ServeProcess, key_file, raw, serve_environment

from vertex_env.cli.group import main
from vertex_env.emulator import EmulatorServer
from vertex_env.environment import resolve
from vertex_env.proxy.models import RETRY_AFTER
from vertex_env.proxy.server import BackgroundProxy

PROJECT = "test-project"
LLAMA_ID = "1234567890"
TABLE = f"""
[profiles.team.models]
"google/gemini-3-pro-preview" = {{ location = "global" }}
"llama-3-70b" = {{ endpoint = "{LLAMA_ID}", location = "us-east5" }}
"google/text-embedding-005" = {{ location = "europe-west4" }}
"""
CONFIGURED = ("google/gemini-3-pro-preview", "llama-3-70b", "google/text-embedding-005")


def write_config(config_home: Path, extra: str = "", table: str = TABLE) -> Path:
    path = config_home / "vertex-env" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'default_profile = "team"\n[profiles.team]\nlocation = "us-central1"\n{extra}\n{table}'
    )
    return path


def deploy(emulator: EmulatorServer) -> str:
    """The self-deployed endpoints of the scenario: llama in us-east5 (configured by ID) and a gemma in the
    profile's location (found by its display name); returns the gemma's ID."""
    emulator.admin.deploy_endpoint(
        "llama-3-70b",
        location="us-east5",
        model="meta/llama-3-70b",
        project=PROJECT,
        endpoint_id=LLAMA_ID,
    )
    gemma = emulator.admin.deploy_endpoint(
        "my-gemma", location="us-central1", model="gemma-2-9b-it", project=PROJECT
    )
    return gemma["id"]


def operations(emulator: EmulatorServer, name: str) -> list[dict[str, Any]]:
    return [dict(r) for r in emulator.admin.vertex_requests() if r["operation"] == name]


class Clock:
    """The model directory's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def team(emu: EmulatorServer) -> Iterator[tuple[EmulatorServer, str]]:
    write_config(Path(os.environ["XDG_CONFIG_HOME"]))
    yield emu, deploy(emu)


_CLIENTS: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def client(proxy: BackgroundProxy) -> openai.OpenAI:
    """The openai SDK on the proxy (closed after the test)."""
    sdk = openai.OpenAI(
        base_url=proxy.base_url,
        api_key=proxy.key,
        max_retries=0,
        http_client=openai.DefaultHttpxClient(trust_env=False, timeout=20),
    )
    _CLIENTS.append(sdk)
    return sdk


# -- GET /models ------------------------------------------------------------------------------------------------


def test_models_lists_the_configured_models_every_catalog_page_and_the_endpoints(
    team: tuple[EmulatorServer, str],
) -> None:
    emulator, _ = team
    catalog = [f"google/{m['id']}" for m in emulator.admin.catalog()]
    assert (
        len(catalog) > 10
    )  # more than the catalog's default page: the list must follow nextPageToken
    with BackgroundProxy.for_environment(resolve()) as proxy:
        status, headers, body = http(
            proxy.base_url + "/models", headers={"Authorization": f"Bearer {proxy.key}"}
        )
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        listing = json.loads(body)
        assert listing["object"] == "list"
        ids = [m["id"] for m in listing["data"]]
        assert ids[:3] == list(CONFIGURED)  # the profile's first, as configured
        assert set(catalog) <= set(ids) and "my-gemma" in ids
        assert len(ids) == len(
            set(ids)
        )  # the configured embedding model is also in the catalog: once
        for entry in listing["data"]:
            assert set(entry) == {"id", "object", "created", "owned_by"}
            assert entry["object"] == "model" and isinstance(entry["created"], int)
        deployed = {e["display_name"]: e for e in emulator.admin.endpoints()}
        created = {m["id"]: m["created"] for m in listing["data"]}
        assert created["my-gemma"] == int(deployed["my-gemma"]["create_time"])  # its createTime
        owners = {m["id"]: m["owned_by"] for m in listing["data"]}
        assert owners["google/gemini-2.5-flash"] == "google" and owners["my-gemma"] == PROJECT
        # the SDK reads it as OpenAI's list
        assert [m.id for m in client(proxy).models.list()] == ids
    pages = operations(emulator, "publisher_models")
    assert len(pages) == 2 and all(p["status"] == 200 for p in pages)
    assert len(operations(emulator, "endpoints")) == 1
    assert operations(emulator, "models") == []  # never forwarded to Vertex's HTML 404


def test_a_model_is_retrieved_by_id_even_with_the_sdks_encoded_slash(
    team: tuple[EmulatorServer, str],
) -> None:
    emulator, _ = team
    with BackgroundProxy.for_environment(resolve()) as proxy:
        sdk = client(proxy)
        found = sdk.models.retrieve(
            "google/gemini-3-pro-preview"
        )  # GET /models/google%2Fgemini-3-pro-preview
        assert (found.id, found.object, found.owned_by) == (
            "google/gemini-3-pro-preview",
            "model",
            "google",
        )
        assert sdk.models.retrieve("google/gemma-3-27b-it").id == "google/gemma-3-27b-it"
        assert sdk.models.retrieve("my-gemma").owned_by == PROJECT
        with pytest.raises(openai.NotFoundError) as missing:
            sdk.models.retrieve("google/no-such-model")
        assert missing.value.code == "model_not_found"
        # a dot segment under /models is answered here, never walks out of the base
        status, _, body = http(
            proxy.base_url + "/models/..%2F..%2Fchat%2Fcompletions",
            headers={"Authorization": f"Bearer {proxy.key}"},
        )
        assert status == 404 and b"model_not_found" in body
        status, headers, _ = http(
            proxy.base_url + "/models",
            method="POST",
            body=b"{}",
            headers={"Authorization": f"Bearer {proxy.key}"},
        )
        assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert operations(emulator, "models") == []
    assert all(r["operation"] != "chat/completions" for r in emulator.admin.vertex_requests())


def test_models_is_behind_the_key_and_the_host_rule(team: tuple[EmulatorServer, str]) -> None:
    emulator, _ = team
    with BackgroundProxy.for_environment(resolve()) as proxy:
        assert http(proxy.base_url + "/models")[0] == 401
        assert http(proxy.base_url + "/models", headers={"Authorization": "Bearer wrong"})[0] == 401
        status, _, _ = http(
            proxy.base_url + "/models",
            headers={"Authorization": f"Bearer {proxy.key}", "Host": "evil.example"},
        )
        assert status == 421
    assert emulator.admin.vertex_requests() == []  # nothing asked of Google for a refused client


def test_models_only_lists_the_configured_models_and_asks_google_nothing(
    emu: EmulatorServer,
) -> None:
    write_config(Path(os.environ["XDG_CONFIG_HOME"]), extra="models_only = true")
    deploy(emu)
    with BackgroundProxy.for_environment(resolve()) as proxy:
        assert [m.id for m in client(proxy).models.list()] == list(CONFIGURED)
    assert emu.admin.vertex_requests() == []


def test_without_a_models_table_the_list_is_googles(emu: EmulatorServer) -> None:
    with BackgroundProxy.for_environment(resolve()) as proxy:
        ids = [m.id for m in client(proxy).models.list()]
    assert ids == [f"google/{m['id']}" for m in emu.admin.catalog()]


def test_the_list_is_cached_refreshed_when_stale_and_served_from_the_last_good_copy(
    team: tuple[EmulatorServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    emulator, _ = team
    clock = Clock()
    with BackgroundProxy.for_environment(resolve()) as proxy:
        proxy.proxy.models.clock = clock
        sdk = client(proxy)
        first = [m.id for m in sdk.models.list()]
        asked = len(emulator.admin.vertex_requests())
        assert asked == 3  # two catalog pages, one endpoints page
        clock.now += 3599
        assert [m.id for m in sdk.models.list()] == first
        assert len(emulator.admin.vertex_requests()) == asked  # cached for the hour
        emulator.admin.put_model("gemini-9-ultra")
        emulator.admin.fault("catalog", status=503, count=50)
        clock.now += 2  # stale: this request is answered from the copy, a refresh starts behind it
        with caplog.at_level("WARNING", logger="vertex_env"):
            assert [m.id for m in sdk.models.list()] == first
            wait_for(
                lambda: any("Model Garden catalog" in r.getMessage() for r in caplog.records),
                what="the failed refresh's log line",
            )
            assert [
                m.id for m in sdk.models.list()
            ] == first  # Google still failing: the last good copy
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("vertex_env")]
        failures = [line for line in lines if "could not fetch Google's" in line]
        assert len(failures) == 2, lines  # one line per list, not one per request
        assert any("serving the copy from" in line and "HTTP 503" in line for line in failures)
        assert proxy.key not in "".join(lines)
        failed_at = len(emulator.admin.vertex_requests())
        sdk.models.list()
        assert len(emulator.admin.vertex_requests()) == failed_at  # no retry storm after a failure
        emulator.admin.clear_faults()
        clock.now += RETRY_AFTER + 1
        sdk.models.list()  # starts the refresh
        wait_for(
            lambda: "google/gemini-9-ultra" in [m.id for m in sdk.models.list()],
            what="the refreshed list",
        )


def test_a_list_google_refuses_is_retried_alone_and_the_other_is_served(
    team: tuple[EmulatorServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A principal without aiplatform.endpoints.list: the catalog is listed, the refusal is one line, and
    the retry 30 s later asks only for the endpoints (the catalog's copy is fresh)."""
    emulator, _ = team
    emulator.admin.refuse(PROJECT, "IAM_PERMISSION_DENIED")
    clock = Clock()
    with BackgroundProxy.for_environment(resolve()) as proxy:
        proxy.proxy.models.clock = clock
        with caplog.at_level("WARNING", logger="vertex_env"):
            ids = [m.id for m in client(proxy).models.list()]
            assert "google/gemini-2.5-flash" in ids and "my-gemma" not in ids
            assert ids[: len(CONFIGURED)] == list(CONFIGURED)
            assert [r["status"] for r in operations(emulator, "endpoints")] == [403]
            clock.now += RETRY_AFTER + 1
            client(proxy).models.list()
        assert len(operations(emulator, "publisher_models")) == 2  # its two pages, once
        assert [r["status"] for r in operations(emulator, "endpoints")] == [403, 403]
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("vertex_env")]
    refused = [line for line in lines if "endpoints list" in line]
    assert refused and "HTTP 403" in refused[0] and "left out of /models" in refused[0]


def test_a_hung_catalog_never_holds_a_client_longer_than_the_timeout(
    emu: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    write_config(Path(os.environ["XDG_CONFIG_HOME"]), extra='timeout = "2s"')
    emu.admin.fault("catalog", delay=30, count=10)
    with BackgroundProxy.for_environment(resolve()) as proxy:
        started = time.monotonic()
        with caplog.at_level("WARNING", logger="vertex_env"):
            ids = [m.id for m in client(proxy).models.list()]
            waited = time.monotonic() - started
            wait_for(
                lambda: any(
                    "timed out" in r.getMessage()
                    for r in caplog.records
                    if r.name.startswith("vertex_env")
                ),
                what="the line for the list that timed out",
            )
    assert waited < 5, waited
    assert ids[: len(CONFIGURED)] == list(CONFIGURED)
    assert "google/gemini-2.5-flash" not in ids  # the catalog never came


# -- one base URL for every model ----------------------------------------------------------------------------------


def test_chats_naming_different_models_land_on_their_locations_and_endpoints(
    team: tuple[EmulatorServer, str],
) -> None:
    emulator, gemma_id = team
    with BackgroundProxy.for_environment(resolve()) as proxy:
        sdk = client(proxy)
        sdk.models.list()  # the endpoints list is read: display names route from now on
        for model in (
            "google/gemini-3-pro-preview",
            "llama-3-70b",
            "my-gemma",
            "google/gemini-2.5-flash",
        ):
            reply = sdk.chat.completions.create(
                model=model, messages=[{"role": "user", "content": f"hi {model}"}]
            )
            assert reply.choices[0].message.content == f"Emulated reply to: hi {model}"
        vector = sdk.embeddings.create(model="google/text-embedding-005", input="hello")
        assert vector.data and vector.data[0].embedding
    chats = operations(emulator, "chat/completions")
    landed = [
        (c["model"], c["google_host"], c["location"], c["endpoint"], c["status"]) for c in chats
    ]
    assert landed == [
        ("google/gemini-3-pro-preview", "aiplatform.googleapis.com", "global", "openapi", 200),
        ("llama-3-70b", "us-east5-aiplatform.googleapis.com", "us-east5", LLAMA_ID, 200),
        ("my-gemma", "us-central1-aiplatform.googleapis.com", "us-central1", gemma_id, 200),
        (
            "google/gemini-2.5-flash",
            "us-central1-aiplatform.googleapis.com",
            "us-central1",
            "openapi",
            200,
        ),
    ]
    assert all(c["project"] == PROJECT for c in chats)
    embedded = operations(emulator, "embeddings")
    assert [(e["location"], e["endpoint"], e["status"]) for e in embedded] == [
        ("europe-west4", "openapi", 200)
    ]


def test_a_routed_body_goes_through_byte_for_byte_and_streams(
    team: tuple[EmulatorServer, str],
) -> None:
    emulator, _ = team
    body = b'{ "model" :"llama-3-70b",\n  "messages": [{"role": "user", "content": "caf\\u00e9 \xe2\x98\x95"}] }'
    with BackgroundProxy.for_environment(resolve()) as proxy:
        status, _, answer = http(
            proxy.base_url + "/chat/completions",
            method="POST",
            body=body,
            headers={"Authorization": f"Bearer {proxy.key}", "Content-Type": "application/json"},
        )
        assert status == 200, answer
        stream = client(proxy).chat.completions.create(
            model="google/gemini-3-pro-preview",
            messages=[{"role": "user", "content": "stream please"}],
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "Emulated reply to: stream please"
    sent = emulator.admin.requests(kind="chat")["chat"]
    assert sent[0]["raw_body"].encode("utf-8") == body
    chats = operations(emulator, "chat/completions")
    assert [(c["location"], c["endpoint"], c["stream"]) for c in chats] == [
        ("us-east5", LLAMA_ID, False),
        ("global", "openapi", True),
    ]


def test_a_routed_request_keeps_the_quota_project_and_the_401_retry(
    team: tuple[EmulatorServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator, _ = team
    monkeypatch.setenv("VERTEX_ENV_QUOTA_PROJECT", "billing-project")
    with BackgroundProxy.for_environment(resolve()) as proxy:
        sdk = client(proxy)
        sdk.chat.completions.create(
            model="llama-3-70b", messages=[{"role": "user", "content": "a"}]
        )
        emulator.admin.expire()  # Google forgets the token the proxy holds: the next request gets a 401
        reply = sdk.chat.completions.create(
            model="google/gemini-3-pro-preview", messages=[{"role": "user", "content": "b"}]
        )
        assert reply.choices[0].message.content == "Emulated reply to: b"
        assert proxy.stats.upstream_401_retries == 1
    chats = operations(emulator, "chat/completions")
    assert [(c["location"], c["status"]) for c in chats] == [
        ("us-east5", 200),
        ("global", 401),
        ("global", 200),
    ]
    assert {c["user_project"] for c in chats} == {"billing-project"}


def test_an_unknown_model_and_a_body_that_is_no_json_go_to_the_profiles_base(
    team: tuple[EmulatorServer, str],
) -> None:
    emulator, _ = team
    with BackgroundProxy.for_environment(resolve()) as proxy:
        for body in (
            b'{"model": "google/gemini-2.5-pro", "messages": [{"role": "user", "content": "x"}]}',
            b'{"messages": [{"role": "user", "content": "{\\"model\\": \\"llama-3-70b\\"}"}], "model": "google/gemini-2.5-pro"}',
            b"not json",
        ):
            http(
                proxy.base_url + "/chat/completions",
                method="POST",
                body=body,
                headers={"Authorization": f"Bearer {proxy.key}"},
            )
    chats = operations(emulator, "chat/completions")
    assert [(c["location"], c["endpoint"]) for c in chats] == [("us-central1", "openapi")] * 3


# -- the profile's table ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ('"m" = { location = "mars north" }', "invalid location 'mars north'"),
        (
            '"m" = { location = "mars-north1" }',
            "invalid location 'mars-north1': Vertex AI serves no generative models there",
        ),
        ('"m" = { location = "us-centrl1" }', "(did you mean 'us-central1'?)"),
        ('"m" = { endpoint = "abc", location = "us-east5" }', "invalid endpoint 'abc'"),
        ('"m" = { endpoint = "12a" }', "invalid endpoint '12a'"),
        ('"m" = { region = "us-east5" }', "unknown key 'region'"),
        ('"m" = "global"', "invalid entry for model 'm'"),
    ],
)
def test_a_bad_models_entry_is_a_config_error(
    emu: EmulatorServer, entry: str, expected: str
) -> None:
    write_config(Path(os.environ["XDG_CONFIG_HOME"]), table=f"[profiles.team.models]\n{entry}\n")
    result = run_cli("export")
    assert result.returncode == 3, result.stderr
    assert result.stdout == "false;\n"  # what export prints on any error: an eval of it fails
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "profile team" in lines[0], lines


def test_with_a_custom_host_an_entry_in_the_profiles_location_may_be_any_location(
    emu: EmulatorServer,
) -> None:
    """The profile's host (Private Service Connect, a proxy) serves the profile's location, whatever its name;
    an entry elsewhere goes to Google's host for that location, so it must be one Vertex serves."""
    config_home = Path(os.environ["XDG_CONFIG_HOME"])
    served = '[profiles.team.models]\n"m" = { location = "europe-west99" }\n'
    write_config(config_home, 'host = "vertex.psc.example"', served)
    assert run_cli("export").returncode == 3  # the profile's location is us-central1: Google's host
    path = write_config(config_home, 'host = "vertex.psc.example"', served)
    path.write_text(path.read_text().replace('"us-central1"', '"europe-west99"'))
    result = run_cli("export")
    assert result.returncode == 0, result.stderr
    path.write_text(
        path.read_text().replace(
            '"m" = { location = "europe-west99" }', '"m" = { location = "asia-x9" }'
        )
    )
    result = run_cli("export")
    assert result.returncode == 3 and "invalid location 'asia-x9'" in result.stderr, result.stderr


def test_profile_set_show_list_and_remove_know_the_models_table(
    emu: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "vertex-env" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('# my settings\n[profiles.team]\nproject = "test-project"  # keep me\n')
    assert (
        main(
            [
                "profile",
                "set",
                "team",
                "models.google/gemini-3-pro-preview=location=global",
                f"models.llama-3-70b=endpoint={LLAMA_ID},location=us-east5",
                "models_ttl=30m",
            ]
        )
        == 0
    )
    text = path.read_text()
    assert "# my settings" in text and "# keep me" in text
    profile = resolve("team").profile
    assert [(p.model, p.location, p.endpoint) for p in profile.models] == [
        ("google/gemini-3-pro-preview", "global", "openapi"),
        ("llama-3-70b", "us-east5", LLAMA_ID),
    ]
    assert profile.models_ttl == 1800 and profile.models_only is False
    capsys.readouterr()
    assert main(["profile", "show", "team"]) == 0
    shown = capsys.readouterr().out
    assert "models.google/gemini-3-pro-preview = location=global" in shown
    assert f"models.llama-3-70b = location=us-east5, endpoint={LLAMA_ID}" in shown
    assert main(["profile", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert "MODELS" in listed[0]
    team_row = next(line for line in listed if " team " in f" {line} ")
    assert team_row.split()[4] == "2"  # PROFILE PROJECT LOCATION CREDENTIAL MODELS
    # a bad entry on the command line: a usage error, the file untouched
    before = path.read_text()
    assert main(["profile", "set", "team", "models.x=endpoint=abc"]) == 2
    assert "invalid endpoint 'abc'" in capsys.readouterr().err
    assert main(["profile", "set", "team", "models=x"]) == 2
    assert path.read_text() == before
    assert main(["profile", "remove", "team", "models.llama-3-70b"]) == 0
    assert [p.model for p in resolve("team").profile.models] == ["google/gemini-3-pro-preview"]
    assert main(["profile", "remove", "team", "models.google/gemini-3-pro-preview"]) == 0
    assert resolve("team").profile.models == ()
    assert "models." not in path.read_text() and "llama" not in path.read_text()
    assert "models_ttl = 1800" in path.read_text()


# -- the topology: an app in a container -------------------------------------------------------------------------

_SDK_IN_CONTAINER = r"""
import json, sys
import openai
args = json.loads(sys.argv[1])
client = openai.OpenAI(
    base_url=args["base_url"], api_key=args["key"], max_retries=0,
    http_client=openai.DefaultHttpxClient(trust_env=False, timeout=20),
)
out = {"ids": [m.id for m in client.models.list()]}
out["retrieved"] = [client.models.retrieve(m).id for m in args["retrieve"]]
out["replies"] = [
    client.chat.completions.create(model=m, messages=[{"role": "user", "content": "hi " + m}]).choices[0].message.content
    for m in args["chat"]
]
stream = client.chat.completions.create(
    model=args["chat"][1], messages=[{"role": "user", "content": "stream"}], stream=True
)
out["streamed"] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
for name, key in (("no_key", ""), ("wrong_key", "w" * 43)):
    try:
        openai.OpenAI(base_url=args["base_url"], api_key=key or "x", max_retries=0,
                      default_headers={} if key else {"Authorization": ""},
                      http_client=openai.DefaultHttpxClient(trust_env=False, timeout=20)).models.list()
        out[name] = 200
    except openai.APIStatusError as err:
        out[name] = err.status_code
print(json.dumps(out))
"""


@pytest.mark.slow
def test_an_app_in_a_container_lists_retrieves_and_chats_with_three_models_through_one_url(
    container_network: ContainerNetwork, tmp_path: Path
) -> None:
    key = secrets.token_urlsafe(32)
    with EmulatorServer() as emulator:
        gemma_id = deploy(emulator)
        env = serve_environment(tmp_path, emulator)
        write_config(Path(env["XDG_CONFIG_HOME"]))
        serve = ServeProcess(
            env,
            "--listen",
            "0.0.0.0",
            "--key-file",
            str(key_file(tmp_path, key)),
            "--allow-host",
            "vertex-env",
        )
        try:
            base = serve.announced["base_url"].replace("127.0.0.1", container_network.host_address)
            args = {
                "base_url": base,
                "key": key,
                "retrieve": ["google/gemini-3-pro-preview", "google/gemini-2.5-flash", "my-gemma"],
                "chat": ["google/gemini-3-pro-preview", "llama-3-70b", "my-gemma"],
            }
            done = container_network.run(
                [sys.executable, "-c", _SDK_IN_CONTAINER, json.dumps(args)],
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"},
            )
            assert done.returncode == 0, done.stderr
            out = json.loads(done.stdout)
            assert set(CONFIGURED) | {"google/gemini-2.5-flash", "my-gemma"} <= set(out["ids"])
            assert out["retrieved"] == args["retrieve"]
            assert out["replies"] == [f"Emulated reply to: hi {m}" for m in args["chat"]]
            assert out["streamed"] == "Emulated reply to: stream"
            assert (out["no_key"], out["wrong_key"]) == (401, 401)
            # a foreign Host on /models: 421, from the container too
            request = raw(
                "GET",
                serve.announced["base_url"].split(str(serve.port), 1)[1] + "/models",
                host="evil.example",
                key=key,
            )
            with socket.create_connection(("127.0.0.1", serve.port), timeout=10) as sock:
                sock.sendall(request.encode())
                assert sock.recv(64).startswith(b"HTTP/1.1 421")
            logged = [e for e in serve.events("request") if e.get("route") == "/chat/completions"]
            assert {(e["location"], e["endpoint"]) for e in logged} == {
                ("global", "openapi"),
                ("us-east5", LLAMA_ID),
                ("us-central1", gemma_id),
            }
            listening = serve.events("listening")[0]
            assert listening["models"] == sorted(CONFIGURED)
        finally:
            assert serve.stop() == 0
        stderr = "".join(serve.stderr)
        assert key not in stderr and "hi llama-3-70b" not in stderr  # never a key, never a prompt
        chats = operations(emulator, "chat/completions")
        assert {(c["google_host"], c["location"], c["endpoint"]) for c in chats} == {
            ("aiplatform.googleapis.com", "global", "openapi"),
            ("us-east5-aiplatform.googleapis.com", "us-east5", LLAMA_ID),
            ("us-central1-aiplatform.googleapis.com", "us-central1", gemma_id),
        }
        assert operations(emulator, "models") == []

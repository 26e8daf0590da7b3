"""`vertex-env profile` and `cache` commands as a user runs them: what they store and what they show."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import start_emulator

from vertex_env.cli.group import main
from vertex_env.config import file as config_file
from vertex_env.config import profile as config
from vertex_env.emulator import EmulatorServer
from vertex_env.environment import resolve


def test_profile_set_stores_relative_write_paths_as_absolute_ones(
    isolated_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = isolated_machine / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    assert main(["profile", "set", "dev", "write=.env,sub/../b.env,~/c.env,/abs/d.env"]) == 0
    stored = config_file.read_config(config_file.config_path())["profiles"]["dev"]["write"]
    assert stored == [str(project / ".env"), str(project / "b.env"), "~/c.env", "/abs/d.env"]
    os.chdir("/")
    profile = config.profile_from({"profile": "dev"}, dict(os.environ))
    assert profile.write[0] == str(project / ".env")


def test_profile_set_refuses_a_location_vertex_does_not_serve_unless_the_profile_has_a_host(
    isolated_machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["profile", "set", "dev", "project=dev-project", "location=us-centrl1"]) == 2
    err = capsys.readouterr().err
    assert "invalid location 'us-centrl1'" in err and "(did you mean 'us-central1'?)" in err
    assert err.count("\n") == 1
    assert not config_file.config_path().exists()  # nothing half written
    assert main(["profile", "set", "dev", "models.m=location=mars-north1"]) == 2
    assert "invalid location 'mars-north1'" in capsys.readouterr().err
    # a custom host (Private Service Connect) serves the profile's location, whatever its name
    args = ["host=vertex.psc.example", "location=europe-west99", "models.m=location=europe-west99"]
    assert main(["profile", "set", "dev", *args]) == 0
    profile = config.profile_from({"profile": "dev"}, dict(os.environ))
    assert profile.location == "europe-west99" and profile.models[0].location == "europe-west99"
    # a model elsewhere goes to Google's host for its location: one Vertex serves
    assert main(["profile", "set", "dev", "models.n=location=asia-x9"]) == 2
    assert "invalid location 'asia-x9'" in capsys.readouterr().err
    assert [m.model for m in config.profile_from({"profile": "dev"}, dict(os.environ)).models] == [
        "m"
    ]


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch, isolated_machine: Path) -> Iterator[EmulatorServer]:
    server = start_emulator(monkeypatch, isolated_machine, project=None, expires_in=3600)
    yield server
    server.stop()


def three_profiles(isolated_machine: Path) -> Path:
    cfg = config_file.config_path()
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(
        'default_profile = "dev"\n'
        '[profiles.dev]\nproject = "dev-project"\nlocation = "europe-west4"\n'
        '[profiles.prod]\nproject = "prod-project"\nlocation = "global"\nquota_project = "prod-billing"\n'
        f'[profiles.broken]\ncredentials = "{isolated_machine / "missing.json"}"\n'
    )
    return cfg


def test_profile_list_shows_project_location_credential_and_cached_token_life_without_minting(
    emu: EmulatorServer, isolated_machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    three_profiles(isolated_machine)
    resolve("dev").token()
    issued = emu.admin.stats()["tokens_issued"]
    assert main(["profile", "list"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert emu.admin.stats()["tokens_issued"] == issued, "listing never mints"
    assert rows[0].split() == [
        "PROFILE",
        "PROJECT",
        "LOCATION",
        "CREDENTIAL",
        "MODELS",
        "CACHED",
        "TOKEN",
    ]
    by_name = {row.lstrip("* ").split()[0]: row for row in rows[1:]}
    assert sorted(by_name) == ["broken", "dev", "prod"]
    assert by_name["dev"].startswith("*")
    assert by_name["dev"].split()[1:7] == [
        "dev",
        "dev-project",
        "europe-west4",
        "authorized_user",
        "-",  # no models table
        "expires",
    ]
    assert re.search(r"expires in (59|60)m", by_name["dev"]), by_name["dev"]
    assert by_name["prod"].split()[1:] == [
        "prod-project",
        "global",
        "authorized_user",
        "-",
        "none",
    ], "another quota project: another cache entry, none cached yet"
    assert "error:" in by_name["broken"] and "missing.json" in by_name["broken"]
    # the columns line up: every row's project starts where the header's does
    column = rows[0].index("PROJECT")
    assert all(row[column : column + 3] in ("dev", "pro", "-  ") for row in rows[1:])


def test_cache_clear_for_one_profile_leaves_the_others(
    emu: EmulatorServer, isolated_machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    three_profiles(isolated_machine)
    dev, prod = resolve("dev"), resolve("prod")
    dev.token(), prod.token()
    assert main(["cache", "clear", "--profile", "dev"]) == 0
    assert "removed the cached token of profile dev" in capsys.readouterr().err
    assert dev.token_source.cached() is None
    assert prod.token_source.cached() is not None
    assert main(["cache", "clear", "--profile", "dev"]) == 0
    assert "no cached token for profile dev" in capsys.readouterr().err
    assert main(["cache", "clear", "--profile", "nope"]) == 3
    assert prod.token_source.cached() is not None
    assert main(["cache", "clear"]) == 0
    assert prod.token_source.cached() is None

"""Configuration: precedence of sources, validation messages, base URLs, profiles in the config file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vertex_env.cli.group import main
from vertex_env.config import file as config_file
from vertex_env.config import values as config_values
from vertex_env.config.profile import Profile, base_url, profile_from
from vertex_env.errors import ConfigError, UsageError


def make_profile(**values: object) -> Profile:
    base: dict[str, object] = {
        "name": None,
        "project": "P",
        "location": "us-central1",
        "endpoint": "openapi",
        "api_version": "v1",
        "host": None,
        "credentials": None,
        "impersonate": None,
        "lifetime": 3600,
        "quota_project": None,
        "scopes": (config_values.CLOUD_PLATFORM_SCOPE,),
        "min_ttl": 300,
    }
    base.update(values)
    return Profile(**base)  # type: ignore[arg-type]


# Every example of ../shared/reference/vertex-openai-compat.md, plus the override and the emulator.
@pytest.mark.parametrize(
    ("values", "emulator", "expected"),
    [
        (
            {"api_version": "v1beta1"},
            None,
            "https://us-central1-aiplatform.googleapis.com/v1beta1/projects/P/locations/us-central1/endpoints/openapi",
        ),
        (
            {"location": "global"},
            None,
            "https://aiplatform.googleapis.com/v1/projects/P/locations/global/endpoints/openapi",
        ),
        (
            {"endpoint": "1234567890"},
            None,
            "https://us-central1-aiplatform.googleapis.com/v1/projects/P/locations/us-central1/endpoints/1234567890",
        ),
        (
            {"location": "europe-west4"},
            None,
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/P/locations/europe-west4/endpoints/openapi",
        ),
        (
            {"host": "vertex.p.googleapis.com"},
            None,
            "https://vertex.p.googleapis.com/v1/projects/P/locations/us-central1/endpoints/openapi",
        ),
        (
            {},
            "127.0.0.1:8089",
            "http://127.0.0.1:8089/v1/projects/P/locations/us-central1/endpoints/openapi",
        ),
    ],
)
def test_base_url_matches_the_reference(
    values: dict[str, object], emulator: str | None, expected: str
) -> None:
    assert base_url(make_profile(**values), emulator) == expected


def test_flag_beats_vertex_env_var_beats_google_var_beats_profile(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[profiles.default]\nproject = "from-profile"\nlocation = "asia-east1"\nendpoint = "42"\n'
    )
    env = {
        "VERTEX_ENV_CONFIG": str(cfg),
        "VERTEX_ENV_PROJECT": "from-vertex-env",
        "GOOGLE_CLOUD_PROJECT": "from-google",
        "GOOGLE_CLOUD_LOCATION": "europe-west1",
    }
    p = profile_from({"project": "from-flag"}, env)
    assert (p.project, p.sources["project"]) == ("from-flag", "flag --project")
    p = profile_from({}, env)
    assert (p.project, p.sources["project"]) == ("from-vertex-env", "env VERTEX_ENV_PROJECT")
    del env["VERTEX_ENV_PROJECT"]
    p = profile_from({}, env)
    assert (p.project, p.sources["project"]) == ("from-google", "env GOOGLE_CLOUD_PROJECT")
    assert (p.location, p.sources["location"]) == ("europe-west1", "env GOOGLE_CLOUD_LOCATION")
    del env["GOOGLE_CLOUD_PROJECT"]
    p = profile_from({}, env)
    assert p.project == "from-profile" and p.sources["project"].startswith("profile default")
    assert p.endpoint == "42" and p.location == "europe-west1"


def test_gcloud_configured_project_is_read_from_its_files_without_a_subprocess(
    tmp_path: Path,
) -> None:
    gcloud = tmp_path / "gcloud"
    (gcloud / "configurations").mkdir(parents=True)
    (gcloud / "active_config").write_text("work\n")
    (gcloud / "configurations" / "config_work").write_text(
        "[core]\nproject = gcloud-project\naccount = a@b.c\n"
    )
    p = profile_from({}, {"CLOUDSDK_CONFIG": str(gcloud), "PATH": ""})
    assert p.project == "gcloud-project"
    assert "config_work" in p.sources["project"]


def test_credential_project_comes_before_gcloud_but_after_everything_else(tmp_path: Path) -> None:
    p = profile_from({}, {}, credential_project=lambda _p: ("sa-project-1", "credential file"))
    assert (p.project, p.sources["project"]) == ("sa-project-1", "credential file")
    p = profile_from(
        {},
        {"CLOUDSDK_CORE_PROJECT": "core-project"},
        credential_project=lambda _p: ("sa-project-1", "x"),
    )
    assert p.project == "core-project"


def test_every_location_vertex_serves_passes_the_location_check() -> None:
    from vertex_env.config.values import validate_location
    from vertex_env.core.refusal_table import VERTEX_LOCATIONS

    for location in VERTEX_LOCATIONS:
        assert validate_location(location) == location
    # a location Vertex serves no generative models in (a multi-region, a region it lacks, a typo) is refused,
    # unless a custom host (Private Service Connect, a proxy) serves it: then any location of the right shape
    for location in ("us", "eu", "africa-south1", "europe-west99", "mars-north1"):
        with pytest.raises(ConfigError, match="Vertex AI serves no generative models there"):
            validate_location(location)
        assert validate_location(location, hosted=True) == location
    with pytest.raises(ConfigError, match="expected 'global' or a region"):
        validate_location("mars north", hosted=True)


def test_a_custom_host_takes_any_location_and_the_config_files_bad_one_is_a_config_error(
    tmp_path: Path,
) -> None:
    p = profile_from({"location": "europe-west99", "host": "vertex.psc.example"}, {})
    assert (p.location, p.host) == ("europe-west99", "vertex.psc.example")
    p = profile_from({}, {"VERTEX_ENV_LOCATION": "us", "VERTEX_ENV_HOST": "vertex.psc.example"})
    assert p.location == "us"
    with pytest.raises(
        UsageError, match=r"invalid location 'us': .*\(from env VERTEX_ENV_LOCATION\)"
    ):
        profile_from({}, {"VERTEX_ENV_LOCATION": "us"})
    cfg = tmp_path / "c.toml"
    cfg.write_text('[profiles.dev]\nproject = "dev-project"\nlocation = "europe-west99"\n')
    with pytest.raises(ConfigError) as err:
        profile_from({"profile": "dev"}, {"VERTEX_ENV_CONFIG": str(cfg)})
    assert not isinstance(err.value, UsageError)  # exit 3, the file's
    assert "(did you mean 'europe-west9'?)" in str(err.value) and str(cfg) in str(err.value)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"project": "Bad_Project"}, "invalid project 'Bad_Project': expected a project id"),
        ({"location": "mars"}, "invalid location 'mars': expected 'global' or a region"),
        (
            {"location": "mars-north1"},
            "invalid location 'mars-north1': Vertex AI serves no generative models there; its "
            "locations: https://cloud.google.com/vertex-ai/generative-ai/docs/learn/locations "
            "(with --host any location is accepted) (from flag --location)",
        ),
        (
            {"location": "euorpe-west4"},
            "invalid location 'euorpe-west4': Vertex AI serves no generative models there (did you mean "
            "'europe-west4'?); its locations: https://cloud.google.com",
        ),
        (
            {"endpoint": "gemini"},
            "invalid endpoint 'gemini': expected 'openapi' (Gemini) or a numeric endpoint id",
        ),
        ({"api_version": "v2"}, "invalid api version 'v2': expected one of v1, v1beta1"),
        (
            {"host": "https://x.example.com/path"},
            "invalid host 'https://x.example.com/path': expected a host name",
        ),
        ({"lifetime": "13h"}, "invalid lifetime 46800s: expected 1s to 12h"),
        ({"impersonate": "not-an-email"}, "invalid service account 'not-an-email'"),
        ({"min_ttl": "soon"}, "invalid min TTL 'soon'"),
        ({"scopes": "cloud-platform"}, "invalid scope 'cloud-platform'"),
    ],
)
def test_bad_values_are_refused_with_what_is_accepted(flags: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        profile_from(flags, {})
    assert message in str(err.value)
    assert "(from flag --" in str(err.value)


def test_unknown_profile_lists_the_known_ones(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[profiles.dev]\nproject = "dev-project"\n[profiles.prod]\nproject = "prod-project"\n'
    )
    with pytest.raises(ConfigError, match=r"unknown profile 'stage' \(known profiles: dev, prod"):
        profile_from({"profile": "stage"}, {"VERTEX_ENV_CONFIG": str(cfg)})


def test_durations_accept_units() -> None:
    assert [config_values.parse_duration(v, "x") for v in ("300", "5m", "1h", "90s", 7)] == [
        300,
        300,
        3600,
        90,
        7,
    ]


def test_profile_commands_edit_the_file_and_keep_comments(
    isolated_machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config_file.config_path()
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(
        '# my settings\n# colour = true  # keep me\n\n[profiles.old]\nproject = "old-project"\n'
    )
    assert (
        main(["profile", "set", "dev", "project=dev-project", "location=global", "min-ttl=10m"])
        == 0
    )
    text = cfg.read_text()
    assert text.startswith("# my settings\n# colour = true  # keep me\n")
    assert main(["profile", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"profiles": ["dev", "old"], "default": None}
    assert main(["profile", "default", "dev"]) == 0
    p = profile_from({}, dict(__import__("os").environ))
    assert (p.name, p.project, p.location, p.min_ttl) == ("dev", "dev-project", "global", 600)
    assert main(["profile", "set", "dev", "location=nowhere"]) == 2  # a bad argument: usage error
    assert "invalid location 'nowhere'" in capsys.readouterr().err
    assert main(["profile", "remove", "dev", "location"]) == 0
    assert main(["profile", "show", "dev", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"project": "dev-project", "min_ttl": 600}
    assert main(["profile", "remove", "old"]) == 0
    assert main(["profile", "show", "old"]) == 3
    assert "unknown profile 'old' (known profiles: dev" in capsys.readouterr().err
    assert "# colour = true  # keep me" in cfg.read_text()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("project = 123", "invalid project 123: expected a string"),
        ("location = true", "invalid location True: expected a string"),
        ('host = ["a"]', "invalid host ['a']: expected a string"),
        ("scopes = 5", "invalid scopes 5: expected a string or a list of strings"),
        ("write = 5", "invalid write 5: expected a string or a list of strings"),
        ("min_ttl = [1]", "invalid min_ttl [1]: expected a number of seconds"),
    ],
)
def test_a_config_value_of_the_wrong_type_is_a_one_line_error(
    line: str, message: str, tmp_path: Path
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[profiles.default]\n{line}\n")
    with pytest.raises(ConfigError) as err:
        profile_from({}, {"VERTEX_ENV_CONFIG": str(cfg)})
    assert message in str(err.value) and "(from profile default" in str(err.value)


@pytest.mark.slow
def test_profile_edits_follow_a_symlinked_config_and_lose_nothing_under_concurrency(
    isolated_machine: Path,
) -> None:
    import os
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    dotfiles = isolated_machine / "dotfiles" / "config.toml"
    dotfiles.parent.mkdir()
    dotfiles.write_text("# managed by my dotfiles\n")
    link = config_file.config_path()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(dotfiles)

    def set_profile(i: int) -> int:
        command = [
            sys.executable,
            "-m",
            "vertex_env",
            "profile",
            "set",
            f"p{i}",
            f"project=project-{i:03d}",
        ]
        return subprocess.run(
            command, env=dict(os.environ), capture_output=True, check=False
        ).returncode

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(set_profile, range(8))) == [0] * 8
    assert link.is_symlink()
    text = dotfiles.read_text()
    assert text.startswith("# managed by my dotfiles\n")
    assert all(f'project = "project-{i:03d}"' in text for i in range(8))


@pytest.mark.slow
def test_the_http_seam_depends_on_no_configuration_module() -> None:
    """transport.py is the bottom seam: it takes the emulator switch from vertex_env.config.routing, not config."""
    code = (
        "import sys, vertex_env.core.transport; "
        "print(' '.join(m for m in sys.modules if m.startswith('vertex_env')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    loaded = set(result.stdout.split())
    assert "vertex_env.core.transport" in loaded
    assert not loaded & {
        "vertex_env.config.profile",
        "vertex_env.config.options",
        "vertex_env.config.file",
    }


def test_a_profile_is_immutable_and_compared_by_value_not_by_sources() -> None:
    p = profile_from({"project": "my-project"}, {"VERTEX_ENV_CONFIG": "/nonexistent.toml"})
    q = profile_from({}, {"VERTEX_ENV_PROJECT": "my-project", "VERTEX_ENV_CONFIG": "/nonexistent"})
    assert p == q and hash(p) == hash(q) and p.sources != q.sources
    with pytest.raises(AttributeError):
        p.project = "other-project"  # type: ignore[misc,unused-ignore]
    assert (
        p.replace(project="other-project").project == "other-project" and p.project == "my-project"
    )
    assert "project='my-project'" in repr(p)
    import copy
    import pickle

    for twin in (copy.copy(p), copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert twin == p and twin.sources == p.sources

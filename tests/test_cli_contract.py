"""The everyday contract of the command line: whole-string validation, one-line errors, exit codes, precedence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_tool, start_emulator

from vertex_env.cli.group import main
from vertex_env.config import file as config_file
from vertex_env.config.profile import profile_from
from vertex_env.emulator import EmulatorServer
from vertex_env.errors import ConfigError

VERTEX_ENV = str(Path(sys.executable).parent / "vertex-env")


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch, isolated_machine: Path) -> Iterator[EmulatorServer]:
    server = start_emulator(monkeypatch, isolated_machine, project=None)
    try:
        yield server
    finally:
        server.stop()


def write_config(text: str) -> Path:
    cfg = config_file.config_path()
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(text)
    return cfg


@pytest.mark.parametrize(
    "args",
    [
        ["--project", "my-project\n"],
        ["--location", "us-central1\n"],
        ["--endpoint", "openapi\n"],
        ["--host", "psc.example.com\n"],
        ["--impersonate", "sa@p.iam.gserviceaccount.com\n"],
        ["--quota-project", "billing-project\n"],
        ["--credentials", "keyring:prod\n"],
        ["--profile", "dev\n"],
    ],
)
def test_a_trailing_newline_is_refused_everywhere(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    write_config('[profiles.dev]\nproject = "dev-project"\n')
    assert main(["export", "--project", "my-project", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vertex-env: error: invalid ") and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["status", "--location", "us central"], {}),
        (["export", "--location", "us central"], {}),
        (["token", "--format", "jsn"], {}),  # no such option for token
        (["export", "--format", "jsn"], {}),
        (["token"], {"VERTEX_ENV_LOCATION": "us central"}),
        (["token"], {"GOOGLE_CLOUD_PROJECT": "X"}),
        (["token", "--profile", "a b"], {}),
        (["token", "--lifetime", "2h"], {}),
        (["token"], {"VERTEX_ENV_LIFETIME": "2h"}),
        (["profile", "set", "dev", "location=us central"], {}),
        (["profile", "set", "dev", "locaton=us-central1"], {}),
        (["profile", "set", "bad name", "location=us-central1"], {}),
        (["export", "--unset", "--format", "gitlab"], {}),
    ],
)
def test_every_bad_command_line_value_is_a_usage_error(
    argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VERTEX_ENV_PROJECT", "my-project")
    if "GOOGLE_CLOUD_PROJECT" in env:
        monkeypatch.delenv("VERTEX_ENV_PROJECT")
    assert main(argv) == 2


def test_a_bad_value_in_the_config_file_is_a_configuration_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = write_config('[profiles.default]\nproject = "my-project"\nlocation = "us central"\n')
    assert main(["token"]) == 3
    assert f"(from profile default ({cfg}))" in capsys.readouterr().err


def test_echoed_values_are_capped(capsys: pytest.CaptureFixture[str]) -> None:
    huge = "x" * 5000
    for argv in (["token", "--location", huge], ["token", "--profile", huge]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err) < 400 and "(5000 chars)" in err, err


def test_a_lifetime_without_impersonation_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="a lifetime applies only to an impersonated token"):
        profile_from({"project": "my-project", "lifetime": "2h"}, {})
    cfg = write_config('[profiles.default]\nproject = "my-project"\nlifetime = "2h"\n')
    assert main(["token"]) == 3
    assert f"profile default ({cfg})" in capsys.readouterr().err
    profile = profile_from(
        {"project": "my-project", "lifetime": "2h", "impersonate": "sa@p.iam.gserviceaccount.com"},
        {"VERTEX_ENV_CONFIG": "/nonexistent.toml"},
    )
    assert profile.lifetime == 7200


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('defualt_profile = "dev"\n', "unknown top-level key 'defualt_profile'"),
        ('defualt_profile = "dev"\n', "(did you mean 'default_profile'?)"),
        ('[profile.prod]\nproject = "p-project"\n', "unknown top-level table 'profile'"),
        ('[profile.prod]\nproject = "p-project"\n', "(did you mean [profiles.prod]?)"),
        ('default_profile = "nope"\n', "default_profile 'nope' in config file"),
        ('default_profile = "dve"\n', "(did you mean 'dev'?)"),
        ("default_profile = 5\n", "invalid default_profile 5"),
        ('default_profile = "dev"\n[profiles.dev]\nprojcet = "x"\n', "(did you mean 'project'?)"),
    ],
)
def test_config_file_mistakes_name_the_key_and_the_file(
    text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(
        text + '[profiles.dev]\nproject = "dev-project"\n' * ("[profiles.dev]" not in text)
    )
    assert main(["token", "--project", "my-project"]) == 3
    err = capsys.readouterr().err
    assert message in err and str(cfg) in err and err.count("\n") == 1, err


def test_a_config_file_that_is_not_utf8_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config_file.config_path()
    cfg.parent.mkdir(parents=True)
    cfg.write_bytes(b'[profiles.dev]\nproject = "caf\xe9-project"\n')
    for argv in (["token"], ["profile", "list"], ["profile", "set", "dev", "location=global"]):
        assert main(argv) == 3
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is not UTF-8" in err and str(cfg) in err, err


def _without_root_powers(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run as root without CAP_DAC_OVERRIDE: file permissions then hold for the test as for a user."""
    setpriv = require_tool("setpriv")
    drop = "-dac_override,-dac_read_search"
    return subprocess.run(
        [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", VERTEX_ENV, *argv],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


@pytest.mark.slow
def test_profile_set_where_nothing_can_be_written_is_one_line(isolated_machine: Path) -> None:
    env = dict(os.environ)
    cfg = write_config('[profiles.dev]\nproject = "dev-project"\n')
    store = isolated_machine / "store"  # a read-only store, as home-manager's
    store.mkdir()
    (store / "config.toml").write_text('[profiles.dev]\nproject = "dev-project"\n')
    linked = isolated_machine / "linked.toml"
    linked.symlink_to(store / "config.toml")
    unwritable_home = isolated_machine / "locked-home"
    unwritable_home.mkdir()
    cases = [
        {"VERTEX_ENV_CONFIG": str(cfg)},
        {"VERTEX_ENV_CONFIG": str(linked)},
        {"HOME": str(unwritable_home), "XDG_CONFIG_HOME": str(unwritable_home / ".config")},
    ]
    for path in (cfg.parent, store, unwritable_home):
        path.chmod(0o555)
    (store / "config.toml").chmod(0o444)
    cfg.chmod(0o444)
    try:
        for extra in cases:
            result = _without_root_powers(
                ["profile", "set", "dev", "location=global"], {**env, **extra}
            )
            assert result.returncode == 3, result.stderr
            assert result.stderr.startswith("vertex-env: error: cannot write the config file")
            assert result.stderr.count("\n") == 1 and "Permission denied" in result.stderr
        assert "location" not in cfg.read_text() + (store / "config.toml").read_text()
    finally:
        for path in (cfg.parent, store, unwritable_home):
            path.chmod(0o755)


def test_a_named_profile_outranks_googles_ambient_variables(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(
        'default_profile = "dev"\n'
        '[profiles.dev]\nproject = "dev-project"\nlocation = "europe-west4"\n'
        '[profiles.staging]\nproject = "staging-project"\nlocation = "us-east1"\n'
    )
    # as left behind by `eval "$(vertex-env export --google --profile dev)"`
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "dev-project")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "europe-west4")
    assert main(["export", "--format", "json", "--profile", "staging"]) == 0
    url = json.loads(capsys.readouterr().out)["OPENAI_BASE_URL"]
    assert "/projects/staging-project/locations/us-east1/" in url
    monkeypatch.setenv("VERTEX_ENV_PROFILE", "staging")
    assert main(["status", "--json"]) == 0
    values = json.loads(capsys.readouterr().out)["values"]
    assert values["project"]["value"] == "staging-project"
    assert "the named profile outranks env GOOGLE_CLOUD_PROJECT" in values["project"]["source"]
    # A default profile nobody named still yields to Google's variables, as before.
    monkeypatch.delenv("VERTEX_ENV_PROFILE")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "other-project")
    assert main(["status", "--json"]) == 0
    values = json.loads(capsys.readouterr().out)["values"]
    assert values["project"] == {"value": "other-project", "source": "env GOOGLE_CLOUD_PROJECT"}


@pytest.mark.slow
def test_export_unset_removes_only_what_vertex_env_set(emu: EmulatorServer) -> None:
    bash = require_tool("bash")
    script = (
        "export GOOGLE_CLOUD_PROJECT=mine OPENAI_API_BASE=mine-too; "
        'eval "$(vertex-env export --project my-project)" && test -n "$OPENAI_API_KEY" && '
        'eval "$(vertex-env export --unset)" && '
        'echo "key=${OPENAI_API_KEY-unset} url=${OPENAI_BASE_URL-unset} set=${VERTEX_ENV_SET-unset} '
        'project=$GOOGLE_CLOUD_PROJECT base=$OPENAI_API_BASE"'
    )
    result = subprocess.run(
        [bash, "--norc", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": f"{Path(VERTEX_ENV).parent}:{os.environ['PATH']}"},
    )
    assert result.stdout == "key=unset url=unset set=unset project=mine base=mine-too\n", (
        result.stderr
    )


@pytest.mark.parametrize(
    "value", ["http://127.0.0.1:{port}", "http://127.0.0.1:{port}/", "127.0.0.1:{port}"]
)
def test_emulator_host_takes_an_http_url_too(
    value: str,
    emu: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = emu.host_port.rsplit(":", 1)[1]
    monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", value.format(port=port))
    assert main(["export", "--format", "json", "--project", "my-project"]) == 0
    url = json.loads(capsys.readouterr().out)["OPENAI_BASE_URL"]
    assert url.startswith(f"http://127.0.0.1:{port}/v1/projects/my-project/")


@pytest.mark.parametrize("value", ["https://127.0.0.1:8765", "127.0.0.1:8765/path", "ftp://x:1"])
def test_emulator_host_refuses_other_schemes_and_paths(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", value)
    assert main(["token", "--project", "my-project"]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err


def test_a_mistyped_command_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exprot"]) == 2
    assert "Did you mean 'export'?" in capsys.readouterr().err
    assert main(["nonsense"]) == 2
    assert "No such command 'nonsense'" in capsys.readouterr().err


def _secrets_of(adc: Path) -> list[str]:
    data = json.loads(adc.read_text())
    return [data["refresh_token"], data["client_secret"]]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["token", "--debug"], {}),
        (["export", "--no-cache"], {"VERTEX_ENV_DEBUG": "1"}),
    ],
)
def test_debug_logs_each_request_to_google_without_a_secret(
    argv: list[str], env: dict[str, str], emu: EmulatorServer, isolated_machine: Path
) -> None:
    """--debug / VERTEX_ENV_DEBUG: one stderr line per HTTP request (method, URL, status, time), no token."""
    result = subprocess.run(
        [VERTEX_ENV, *argv, "--project", "my-project"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("vertex-env: debug: ")]
    assert lines, result.stderr
    assert any(
        line.startswith("vertex-env: debug: POST https://oauth2.googleapis.com/token via emulator ")
        and " -> 200 (" in line
        and line.endswith(" ms)")
        for line in lines
    ), lines
    assert emu.state.stats()["tokens_issued"] == 1
    minted = result.stdout.strip() if argv[0] == "token" else result.stdout.split("'")[1]
    assert minted.startswith("ya29.")
    for secret in [minted, *_secrets_of(isolated_machine / "adc.json")]:
        assert secret not in result.stderr


@pytest.mark.slow
def test_without_debug_nothing_is_logged(emu: EmulatorServer) -> None:
    result = subprocess.run(
        [VERTEX_ENV, "token", "--project", "my-project"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_debug_lines_redact_secrets_in_a_url(
    emu: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from vertex_env.core.transport import make_request

    request = make_request(debug=True)
    request("https://oauth2.googleapis.com/tokeninfo?access_token=ya29.secret-value&x=1")
    err = capsys.readouterr().err
    assert err.startswith(
        "vertex-env: debug: GET https://oauth2.googleapis.com/tokeninfo?access_token="
    )
    assert "ya29.secret-value" not in err and "[redacted]" in err


def test_a_bad_debug_value_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VERTEX_ENV_DEBUG", "maybe")
    assert main(["token", "--project", "my-project"]) == 2
    assert "VERTEX_ENV_DEBUG" in capsys.readouterr().err


@pytest.mark.slow
def test_bash_completes_profile_names_through_the_console_script(tmp_path: Path) -> None:
    """The README's `eval "$(_VERTEX_ENV_COMPLETE=bash_source vertex-env)"`, then a real bash completion call
    on `vertex-env token --profile d<TAB>` (token is a warm-path command: cli/entry.py must leave it to click)."""
    bash = require_tool("bash")
    write_config('[profiles.dev]\nlocation = "global"\n[profiles.demo]\n[profiles.prod]\n')
    script = (
        'eval "$(_VERTEX_ENV_COMPLETE=bash_source vertex-env)"\n'
        'COMP_WORDS=(vertex-env "$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))\n'
        '_vertex_env_completion vertex-env\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    path = f"{Path(VERTEX_ENV).parent}:{os.environ['PATH']}"
    for words, expected in (
        (["token", "--profile", "d"], ["demo", "dev"]),
        (["export", "--profile", "p"], ["prod"]),
        (["status", "--profile", ""], ["demo", "dev", "prod"]),
    ):
        result = subprocess.run(
            [bash, "--norc", "-c", script, "bash", *words],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PATH": path},
        )
        assert sorted(result.stdout.split()) == expected, (words, result.stderr)


@pytest.mark.slow
def test_credentials_complete_as_file_paths(tmp_path: Path) -> None:
    """click's bash protocol (COMP_WORDS, COMP_CWORD): `file,…` makes bash complete paths itself."""
    for command in ("token", "run", "status"):
        result = subprocess.run(
            [VERTEX_ENV],
            capture_output=True,
            text=True,
            check=False,
            env={
                **os.environ,
                "COMP_WORDS": f"vertex-env {command} --credentials adc-",
                "COMP_CWORD": "3",
                "_VERTEX_ENV_COMPLETE": "bash_complete",
            },
        )
        assert result.stdout == "file,adc-\n", (command, result.stdout, result.stderr)

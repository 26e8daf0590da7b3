"""CI sinks: what GitHub's runner, GitLab's dotenv report and CircleCI's $BASH_ENV read back."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool
from hypothesis import given, settings
from hypothesis import strategies as st

from vertex_env.errors import SinkError
from vertex_env.sinks.ci import GITLAB_WARNING, render_gitlab, write_circleci, write_github

TOKEN = "ya29.a0AfB_byC-1x2Y3z_ABCdef-GHI.jkl_MNO-pqr"
URL = "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/endpoints/openapi"
REAL = {"OPENAI_API_KEY": TOKEN, "OPENAI_BASE_URL": URL, "VERTEX_ENV_EXPIRES_AT": "1767225600"}

any_value = st.text(
    alphabet=st.characters(codec="utf-8", blacklist_characters="\0"), max_size=40
).filter(lambda v: not v.endswith("\r"))


def parse_github_env(text: str) -> dict[str, str]:
    """The runner's documented GITHUB_ENV format: `NAME=value` lines, or `NAME<<DELIM`, lines, `DELIM`."""
    result: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        eq, heredoc = line.find("="), line.find("<<")
        if eq >= 0 and (heredoc < 0 or eq < heredoc):
            result[line[:eq]] = line[eq + 1 :]
            continue
        assert heredoc > 0, f"invalid line {line!r}"
        name, delim = line.split("<<", 1)
        body: list[str] = []
        while True:
            assert i < len(lines), "matching delimiter not found"
            if lines[i] == delim:
                i += 1
                break
            body.append(lines[i])
            i += 1
        result[name] = "\n".join(body)
    return result


def test_github_masks_the_token_first_and_only_it(tmp_path: Path) -> None:
    env_file = tmp_path / "github_env"
    env_file.write_text("EARLIER=kept\n")
    out = write_github(REAL, TOKEN, {"GITHUB_ENV": str(env_file)})
    assert out == f"::add-mask::{TOKEN}\n"
    assert parse_github_env(env_file.read_text()) == {"EARLIER": "kept", **REAL}


def test_github_mask_escapes_workflow_command_data(tmp_path: Path) -> None:
    out = write_github({}, "a%b\nc\r", {"GITHUB_ENV": str(tmp_path / "e")})
    assert out == "::add-mask::a%25b%0Ac%0D\n"


@settings(max_examples=50, deadline=None)
@given(values=st.lists(any_value, max_size=8))
def test_github_env_file_round_trips_any_value(values: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        env_file = Path(d) / "github_env"
        variables = {f"V{i}": v for i, v in enumerate(values)}
        write_github(variables, TOKEN, {"GITHUB_ENV": str(env_file)})
        text = env_file.read_bytes().decode("utf-8")  # no newline translation: CRs are data
        assert parse_github_env(text) == variables


def test_github_uses_a_fresh_random_delimiter(tmp_path: Path) -> None:
    env_file = tmp_path / "e"
    write_github({"A": "1"}, TOKEN, {"GITHUB_ENV": str(env_file)})
    write_github({"A": "2"}, TOKEN, {"GITHUB_ENV": str(env_file)})
    first, second = (
        line.split("<<")[1] for line in env_file.read_text().splitlines() if "<<" in line
    )
    assert first != second
    assert first.startswith("ghadelimiter_")


def test_github_refuses_a_value_holding_the_delimiter(tmp_path: Path) -> None:
    env_file = tmp_path / "e"
    with pytest.raises(SinkError, match="delimiter"):
        write_github({"A": "x\nEOF_X\ny"}, TOKEN, {"GITHUB_ENV": str(env_file)}, delimiter="EOF_X")
    assert not env_file.exists()


@pytest.mark.parametrize("environ", [{}, {"GITHUB_ENV": ""}])
def test_github_without_env_file_is_an_error(environ: dict[str, str]) -> None:
    with pytest.raises(SinkError, match="GITHUB_ENV"):
        write_github(REAL, TOKEN, environ)


@pytest.mark.parametrize("name", ["A\nB", "A<<B", "A=B", ""])
def test_github_refuses_bad_names(name: str, tmp_path: Path) -> None:
    with pytest.raises(SinkError):
        write_github({name: "x"}, TOKEN, {"GITHUB_ENV": str(tmp_path / "e")})


def test_github_refuses_nul_without_echoing_the_value(tmp_path: Path) -> None:
    with pytest.raises(SinkError) as info:
        write_github(
            {"OPENAI_API_KEY": "ya29.secret\0"}, TOKEN, {"GITHUB_ENV": str(tmp_path / "e")}
        )
    assert "secret" not in str(info.value)


def test_gitlab_report_is_plain_key_value_lines() -> None:
    out = render_gitlab(REAL)
    assert out == "".join(f"{k}={v}\n" for k, v in REAL.items())
    for line in out.splitlines():
        assert line and not line.startswith("#")
        assert "'" not in line and '"' not in line


@pytest.mark.parametrize("value", ["a\nb", "a\rb", " lead", "trail ", "a b", "a\tb", "\x1b"])
def test_gitlab_refuses_values_its_report_cannot_hold(value: str) -> None:
    with pytest.raises(SinkError, match="OPENAI_API_KEY"):
        render_gitlab({"OPENAI_API_KEY": value})


def test_gitlab_warning_says_who_can_read_it() -> None:
    assert "dotenv" in GITLAB_WARNING and "visible" in GITLAB_WARNING


@settings(max_examples=10, deadline=None)
@given(values=st.lists(any_value, min_size=1, max_size=10))
def test_circleci_bash_env_is_read_by_bash(values: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        bash_env = Path(d) / "bash_env"
        bash_env.write_text("export EARLIER=kept\n")
        variables = {f"V{i}": v for i, v in enumerate(values)} | REAL
        write_circleci(variables, {"BASH_ENV": str(bash_env)})
        proc = subprocess.run(
            [require_tool("bash"), "-c", '. "$1" && exec env -0', "bash", str(bash_env)],
            env={"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8"},
            capture_output=True,
            timeout=30,
            check=True,
        )
        got = dict(item.split("=", 1) for item in proc.stdout.decode().split("\0") if "=" in item)
        assert {k: got.get(k) for k in variables} == variables
        assert got["EARLIER"] == "kept"


def test_circleci_without_bash_env_is_an_error() -> None:
    with pytest.raises(SinkError, match="BASH_ENV"):
        write_circleci(REAL, {})


@pytest.mark.parametrize(("fmt", "variable"), [("github", "GITHUB_ENV"), ("circleci", "BASH_ENV")])
def test_an_env_file_that_cannot_be_opened_is_a_one_line_error(
    fmt: str, variable: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vertex_env.cli.group import main
    from vertex_env.emulator import EmulatorServer, write_authorized_user

    with EmulatorServer() as emu:
        monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", emu.host_port)
        monkeypatch.setenv("VERTEX_ENV_PROJECT", "test-project")
        monkeypatch.setenv(
            "GOOGLE_APPLICATION_CREDENTIALS", str(write_authorized_user(Path.cwd() / "adc.json"))
        )
        monkeypatch.setenv(variable, "/nonexistent/dir/env")
        assert main(["export", "--format", fmt]) == 9
    out, err = capsys.readouterr()
    assert "cannot append to /nonexistent/dir/env" in err
    assert "ya29." not in out, (
        "a token is printed only with its add-mask line, after a successful write"
    )


def test_a_failed_gitlab_export_leaves_the_report_empty(capsys: pytest.CaptureFixture[str]) -> None:
    from vertex_env.cli.group import main

    assert (
        main(["export", "--format", "gitlab", "--project", "BAD_X"]) == 2
    )  # a bad flag value is a usage error
    assert capsys.readouterr().out == ""

"""Export formats: what real shells read back from the rendered text is exactly what was rendered."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool
from dotenv import dotenv_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vertex_env.errors import SinkError
from vertex_env.sinks.render import (
    FORMATS,
    failure_output,
    render,
    render_unset,
)

TOKEN = "ya29.a0AfB_byC-1x2Y3z_ABCdef-GHI.jkl_MNO-pqr"
URL = "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/endpoints/openapi"
REAL = {"OPENAI_API_KEY": TOKEN, "OPENAI_BASE_URL": URL, "VERTEX_ENV_EXPIRES_AT": "1767225600"}

NASTY = [
    "",
    "plain",
    "it's",
    "'",
    "''",
    '"double" quotes',
    "$HOME $(id) ${PATH} `id`",
    "back\\slash\\",
    "\\'",
    "line1\nline2\n",
    "\n",
    "trailing newline\n\n",
    "tab\there",
    "crlf\r\n",
    "glob * ? [a-z] ~ ~root",
    "; export X=1; echo pwned",
    "%PATH% !bang! ^caret & | < > ( )",
    "unicode \u00e9\u4e2d\U0001f600 \u2018smart\u2019",
    "-n",
    "--",
    "#comment",
    "a=b=c",
    "\x01\x1b[31mred\x7f",
    "\uf600\uf7ff\ufdd0\ufddf\ufffe\U0010ffff\u0085\u2028",  # fish's internal code points; odd breaks
]

# Anything but NUL (and surrogates, which no UTF-8 text holds).
values = st.text(alphabet=st.characters(codec="utf-8", blacklist_characters="\0"), max_size=40)
shell_settings = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def shell_env() -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "LC_ALL": "C.UTF-8"}


def parse_env0(out: bytes) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in out.decode("utf-8").split("\0") if "=" in item)
    return {k: v for k, v in pairs}


def run_posix(
    shell: str, script: str, rendered: Path, env: dict[str, str] | None = None
) -> dict[str, str]:
    """One shell process: eval the rendered file, then print its whole environment NUL-separated."""
    proc = subprocess.run(
        [require_tool(shell), "-c", script, shell, str(rendered)],
        env=env or shell_env(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return parse_env0(proc.stdout)


def run_fish(rendered: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    proc = subprocess.run(
        [require_tool("fish"), "--no-config", "-c", "cat $RENDERED | source; and exec env -0"],
        env={**(env or shell_env()), "RENDERED": str(rendered)},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return parse_env0(proc.stdout)


def batch(vals: list[str]) -> dict[str, str]:
    return {f"V{i}": v for i, v in enumerate(vals)}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rendered"
    path.write_bytes(text.encode("utf-8"))
    return path


QUOTED_EVAL = 'eval "$(cat "$1")" && exec env -0'
UNQUOTED_EVAL = 'eval $(cat "$1") && exec env -0'


@pytest.mark.parametrize("shell", ["bash", "zsh", "dash"])
def test_nasty_values_round_trip_through_quoted_eval(shell: str, tmp_path: Path) -> None:
    variables = {**batch(NASTY), **REAL}
    got = run_posix(shell, QUOTED_EVAL, write(tmp_path, render(variables, "sh")))
    assert {k: got.get(k) for k in variables} == variables


@pytest.mark.parametrize("shell", ["bash", "zsh", "dash"])
@shell_settings
@given(vals=st.lists(values, min_size=1, max_size=12))
def test_any_value_round_trips_through_quoted_eval(
    shell: str, tmp_path: Path, vals: list[str]
) -> None:
    variables = batch(vals)
    got = run_posix(shell, QUOTED_EVAL, write(tmp_path, render(variables, "sh")))
    assert {k: got.get(k) for k in variables} == variables


# Unquoted `eval $(…)` splits words and globs: it keeps values without blanks or glob characters intact.
unsplittable = st.text(
    alphabet=st.characters(codec="utf-8", blacklist_characters="\0 \t\n*?["),
    max_size=40,
)


@pytest.mark.parametrize("shell", ["bash", "dash"])
@shell_settings
@given(vals=st.lists(unsplittable, min_size=1, max_size=12))
def test_unquoted_eval_keeps_statements_apart(shell: str, tmp_path: Path, vals: list[str]) -> None:
    variables = {**batch(vals), **REAL}
    got = run_posix(shell, UNQUOTED_EVAL, write(tmp_path, render(variables, "sh")))
    assert {k: got.get(k) for k in variables} == variables
    assert "export" not in got


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_unquoted_eval_of_real_variables(shell: str, tmp_path: Path) -> None:
    got = run_posix(shell, UNQUOTED_EVAL, write(tmp_path, render(REAL, "sh")))
    assert {k: got.get(k) for k in REAL} == REAL
    assert "export" not in got


def test_nasty_values_round_trip_through_fish_source(tmp_path: Path) -> None:
    variables = {**batch(NASTY), **REAL}
    got = run_fish(write(tmp_path, render(variables, "fish")))
    assert {k: got.get(k) for k in variables} == variables


@shell_settings
@given(vals=st.lists(values, min_size=1, max_size=12))
def test_any_value_round_trips_through_fish_source(tmp_path: Path, vals: list[str]) -> None:
    variables = batch(vals)
    got = run_fish(write(tmp_path, render(variables, "fish")))
    assert {k: got.get(k) for k in variables} == variables


@pytest.mark.parametrize("shell", ["bash", "zsh", "dash"])
def test_unset_removes_the_variables(shell: str, tmp_path: Path) -> None:
    env = {**shell_env(), **REAL, "KEEP": "kept"}
    got = run_posix(shell, QUOTED_EVAL, write(tmp_path, render_unset(REAL, "sh")), env)
    assert not set(REAL) & set(got)
    assert got["KEEP"] == "kept"


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_unquoted_eval_of_unset(shell: str, tmp_path: Path) -> None:
    env = {**shell_env(), **REAL}
    got = run_posix(shell, UNQUOTED_EVAL, write(tmp_path, render_unset(REAL, "sh")), env)
    assert not set(REAL) & set(got)


def test_fish_unset_removes_the_variables(tmp_path: Path) -> None:
    env = {**shell_env(), **REAL, "KEEP": "kept"}
    got = run_fish(write(tmp_path, render_unset([*REAL, "NEVER_SET"], "fish")), env)
    assert not set(REAL) & set(got)
    assert got["KEEP"] == "kept"


@pytest.mark.parametrize("shell", ["bash", "zsh", "dash"])
def test_failure_output_fails_eval_without_closing_the_shell(shell: str) -> None:
    script = 'eval "$(printf %s "$1")" && echo ran; echo status=$?; echo alive'
    proc = subprocess.run(
        [require_tool(shell), "-c", script, shell, failure_output("sh")],
        env=shell_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.stdout == "status=1\nalive\n"


def test_failure_output_fails_fish_source() -> None:
    proc = subprocess.run(
        [
            require_tool("fish"),
            "--no-config",
            "-c",
            "printf %s $OUT | source; and echo ran; echo alive",
        ],
        env={**shell_env(), "OUT": failure_output("fish")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.stdout == "alive\n"


@pytest.mark.parametrize("fmt", FORMATS)
def test_failure_output_never_exits_the_callers_shell(fmt: str) -> None:
    out = failure_output(fmt)
    if fmt == "cmd":
        assert out.startswith("cmd /d /c exit 1")  # exits a child cmd.exe only
    else:
        assert "exit" not in out.lower().replace("lastexitcode", "")
    if fmt in ("dotenv", "json"):
        assert out == ""


@pytest.mark.parametrize("fmt", FORMATS)
def test_nul_is_refused_in_every_format(fmt: str) -> None:
    with pytest.raises(SinkError) as info:
        render({"OPENAI_API_KEY": "ya29.secret\0x"}, fmt)
    assert "OPENAI_API_KEY" in str(info.value)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "$(id)", "", "A;B", "\u00e9"])
def test_invalid_names_are_refused(fmt: str, name: str) -> None:
    with pytest.raises(SinkError):
        render({name: "x"}, fmt)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(SinkError, match="unknown format"):
        render(REAL, "tcsh")


@pytest.mark.parametrize("fmt", FORMATS)
def test_real_variables_render_in_every_format(fmt: str) -> None:
    out = render(REAL, fmt)
    assert TOKEN in out
    assert out.endswith("\n")


def test_json_is_one_object_of_the_variables() -> None:
    assert json.loads(render({**REAL, **batch(NASTY)}, "json")) == {**REAL, **batch(NASTY)}


def test_json_unset_maps_names_to_null() -> None:
    assert json.loads(render_unset(REAL, "json")) == dict.fromkeys(REAL)


def test_dotenv_format_is_read_back_by_python_dotenv() -> None:
    assert dotenv_values(stream=io.StringIO(render(REAL, "dotenv"))) == REAL


def test_dotenv_format_refuses_values_it_cannot_write_unquoted() -> None:
    with pytest.raises(SinkError, match="OPENAI_API_KEY"):
        render({"OPENAI_API_KEY": "a b"}, "dotenv")


def test_dotenv_cannot_express_unset() -> None:
    with pytest.raises(SinkError):
        render_unset(REAL, "dotenv")


def test_powershell_doubles_every_kind_of_single_quote() -> None:
    out = render({"A": "it's \u2018x\u2019 $env:HOME `n"}, "powershell")
    assert out == "$env:A = 'it''s \u2018\u2018x\u2019\u2019 $env:HOME `n';\n"


def test_powershell_unset() -> None:
    assert (
        render_unset(["A"], "powershell")
        == "Remove-Item -Path Env:A -ErrorAction SilentlyContinue;\n"
    )


def test_cmd_renders_quoted_set_statements() -> None:
    assert render(REAL, "cmd").splitlines() == [f'set "{k}={v}"' for k, v in REAL.items()]
    assert render_unset(["A"], "cmd") == 'set "A="\n'


@pytest.mark.parametrize(
    "value", ["a\nb", "a\rb", 'a"b', "%PATH%", "a!b!", "a^b", "caf\u00e9", "\x1b", "a\tb"]
)
def test_cmd_refuses_values_it_cannot_represent(value: str) -> None:
    with pytest.raises(SinkError, match="cmd") as info:
        render({"OPENAI_API_KEY": value}, "cmd")
    assert value not in str(info.value)


@pytest.mark.parametrize("value", ["a & b", "a|b", "<x>", "(x)", "a b", "it's", "a;b", "~"])
def test_cmd_accepts_specials_that_quotes_protect(value: str) -> None:
    assert render({"A": value}, "cmd") == f'set "A={value}"\n'

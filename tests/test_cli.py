"""The command line as a user meets it: entry points, help, version, completion, export through a real shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import require_tool

from vertex_env import __version__
from vertex_env.cli.group import COMMANDS, main
from vertex_env.emulator import EmulatorServer, write_authorized_user


def test_version_from_the_console_script_and_python_m() -> None:
    for command in (["vertex-env"], [sys.executable, "-m", "vertex_env"]):
        exe = (
            command[0]
            if command[0] != "vertex-env"
            else str(Path(sys.executable).parent / "vertex-env")
        )
        result = subprocess.run(
            [exe, *command[1:], "--version"], capture_output=True, text=True, check=True
        )
        assert result.stdout.strip() == f"vertex-env, version {__version__}"


def test_help_lists_every_command_and_each_help_ends_with_an_example(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert f"  {name} " in out
    for name in COMMANDS:
        assert main([name, "--help"]) == 0, name
        text = capsys.readouterr().out.rstrip()
        last_block = text.split("\n\n")[-1]
        assert "vertex-env" in last_block and "Example" in text, (
            f"{name} --help should end with an example"
        )


def test_unknown_command_and_bad_flag_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nonsense"]) == 2
    assert main(["token", "--no-such-flag"]) == 2
    assert "No such" in capsys.readouterr().err


def test_shell_completion_is_served_by_click() -> None:
    exe = str(Path(sys.executable).parent / "vertex-env")
    env = {
        "_VERTEX_ENV_COMPLETE": "bash_complete",
        "COMP_WORDS": "vertex-env exp",
        "COMP_CWORD": "1",
        "PATH": "",
    }
    result = subprocess.run([exe], env=env, capture_output=True, text=True, check=True)
    assert "export" in result.stdout


def test_eval_export_in_real_bash_gives_a_token_the_emulator_accepts(emu: EmulatorServer) -> None:
    bash = require_tool("bash")
    script = 'eval "$(vertex-env export --format sh)" && printf "%s\\n%s\\n%s\\n" "$OPENAI_API_KEY" "$OPENAI_BASE_URL" "$VERTEX_ENV_EXPIRES_AT"'
    result = in_bash(bash, script)
    assert result.returncode == 0, result.stderr
    token, base_url, expires_at = result.stdout.splitlines()
    assert emu.state.lookup_token(token) is not None
    assert (
        base_url
        == f"http://{emu.host_port}/v1/projects/test-project/locations/us-central1/endpoints/openapi"
    )
    assert int(expires_at) > 0


@pytest.mark.slow
def test_unquoted_eval_works_too(emu: EmulatorServer) -> None:
    bash = require_tool("bash")
    script = 'eval $(vertex-env export --format sh) && test -n "$OPENAI_API_KEY" && test -z "${export+x}" && echo ok'
    result = in_bash(bash, script)
    assert result.stdout.strip() == "ok", result.stderr


def test_a_failed_export_makes_eval_fail_and_prints_only_false(isolated_machine: Path) -> None:
    bash = require_tool("bash")
    script = 'eval "$(vertex-env export --format sh --credentials missing.json)"; echo "status=$?"; vertex-env export --format sh --credentials missing.json 2>/dev/null'
    result = in_bash(bash, script)
    lines = result.stdout.splitlines()
    assert lines[0] == "status=1"
    assert lines[1:] == ["false;"]
    assert "credential file missing.json does not exist" in result.stderr


def test_export_json_and_unset(emu: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--format", "json", "--google", "--legacy"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "VERTEX_ENV_EXPIRES_AT",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
        "OPENAI_API_BASE",
    }
    assert data["OPENAI_API_BASE"] == data["OPENAI_BASE_URL"]
    assert main(["export", "--unset", "--format", "sh"]) == 0
    out = capsys.readouterr().out
    assert "unset" in out and "OPENAI_API_KEY" in out


@pytest.mark.slow
def test_default_format_is_posix_sh_whatever_shell_says(emu: EmulatorServer) -> None:
    """$SHELL names the login shell, not the one running the code: a fish user's bash script gets sh."""
    bash = require_tool("bash")
    for login_shell in ("/usr/bin/fish", "/usr/bin/pwsh"):
        result = subprocess.run(
            [
                bash,
                "--norc",
                "-c",
                'eval "$(vertex-env export)" && test -n "$OPENAI_API_KEY" && echo ok',
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**_env_with_venv(), "SHELL": login_shell},
        )
        assert result.stdout == "ok\n", result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "env", "code"),
    [
        (["--porject", "x"], {}, 2),
        (["--format", "jsn"], {}, 2),
        ([], {"VERTEX_ENV_FORMAT": "jsn"}, 2),
        ([], {"VERTEX_ENV_NO_CACHE": "maybe"}, 2),
        (["--credentials", "missing.json"], {}, 5),
        (["--format=fish", "--porject", "x"], {}, 2),
    ],
)
def test_every_failed_export_leaves_false_on_stdout_so_eval_fails(
    emu: EmulatorServer, args: list[str], env: dict[str, str], code: int
) -> None:
    bash = require_tool("bash")
    result = subprocess.run(
        [bash, "--norc", "-c", 'eval "$(vertex-env export "$@")"; echo "status=$?"', "bash", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**_env_with_venv(), **env},
    )
    assert result.stdout == "status=1\n", result.stderr
    direct = subprocess.run(
        [str(Path(sys.executable).parent / "vertex-env"), "export", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**_env_with_venv(), **env},
    )
    assert direct.returncode == code, direct.stderr
    assert direct.stdout == "false;\n"
    assert "Traceback" not in direct.stderr


def test_an_unexpected_exception_in_export_still_leaves_false(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vertex_env.core.source import TokenSource

    def broken(self: TokenSource, min_ttl: float | None = None) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(TokenSource, "get", broken)
    with pytest.raises(RuntimeError):
        main(["export", "--format", "fish"])
    assert capsys.readouterr().out == "false;\n"
    with pytest.raises(RuntimeError):
        main(["export", "--format", "github"])
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("shell", ["bash", "zsh", "dash", "ksh"])
@pytest.mark.parametrize("form", ["separate", "joined"])
def test_a_shells_name_as_format_points_to_sh_in_one_line(
    shell: str, form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--format", shell] if form == "separate" else [f"--format={shell}"]
    assert main(["export", *args]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"vertex-env: error: invalid --format '{shell}': use --format sh (POSIX shell code; "
        "bash, zsh, dash and ksh all read it)\n"
    )
    assert captured.out == "false;\n"  # an eval of it still fails


def test_a_commands_option_before_the_command_says_to_move_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--project", "my-project", "--location", "global", "export"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "vertex-env: error: --project goes after the command: "
        "vertex-env export --project my-project --location global\n"
    )
    assert captured.out == "false;\n"
    # an option no command has keeps click's own message
    assert main(["--no-such-flag", "token"]) == 2
    assert "No such option '--no-such-flag'" in capsys.readouterr().err
    # an option the command does not take either: not "goes after"
    assert main(["--port", "1", "token"]) == 2
    assert "goes after" not in capsys.readouterr().err


def test_a_location_vertex_does_not_serve_is_a_usage_error_with_a_did_you_mean(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["export", "--project", "my-project", "--location", "us-centrl1"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "vertex-env: error: invalid location 'us-centrl1': Vertex AI serves no generative models there "
        "(did you mean 'us-central1'?); its locations: "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/locations "
        "(with --host any location is accepted) (from flag --location)\n"
    )
    assert captured.out == "false;\n"


def test_unset_has_no_ci_format(emu: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--unset", "--format", "github"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--unset" in captured.err


def in_bash(bash: str, script: str) -> subprocess.CompletedProcess[str]:
    """`bash -c SCRIPT` with this venv's vertex-env first on PATH."""
    return subprocess.run(
        [bash, "--norc", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env=_env_with_venv(),
    )


def _env_with_venv() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


class HungServer:
    """A loopback socket that accepts connections and never answers (a stuck proxy, a black-holed route)."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.host_port = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "env"), [(["--timeout", "2"], {}), ([], {"VERTEX_ENV_TIMEOUT": "2s"})]
)
def test_a_hung_endpoint_costs_one_overall_timeout_not_one_per_retry(
    isolated_machine: Path, args: list[str], env: dict[str, str]
) -> None:
    hung = HungServer()
    try:
        adc = write_authorized_user(isolated_machine / "adc.json")
        environ = {
            **_env_with_venv(),
            **env,
            "VERTEX_ENV_EMULATOR_HOST": hung.host_port,
            "GOOGLE_APPLICATION_CREDENTIALS": str(adc),
            "VERTEX_ENV_PROJECT": "test-project",
        }
        # Before the overall deadline this took 3 attempts x 15 s; the subprocess timeout turns that into a failure.
        result = subprocess.run(
            [str(Path(sys.executable).parent / "vertex-env"), "export", *args],
            capture_output=True,
            text=True,
            check=False,
            env=environ,
            timeout=30,
        )
        assert result.returncode == 8, result.stderr
        assert result.stdout == "false;\n"
        assert "no answer within the 2s timeout" in result.stderr, result.stderr
        assert len(hung.accepted) == 1  # the deadline left no room for a retry
    finally:
        hung.close()


@pytest.mark.slow
@pytest.mark.parametrize("command", [["export", "--no-cache"], ["token", "--no-cache"]])
def test_a_dripping_token_answer_ends_within_the_timeout_plus_a_second(
    emu: EmulatorServer, command: list[str]
) -> None:
    """A token answer that sends a byte every 0.5 s keeps every per-read timeout alive (issue 22: 75 s for
    VERTEX_ENV_TIMEOUT=5); --timeout bounds the whole exchange. Measured against the same command refused at
    once (invalid_grant: the same error path), in the same run: what the drip may add is the timeout and a
    second, start-up and the error's reporting not included."""
    vertex_env = str(Path(sys.executable).parent / "vertex-env")

    def timed() -> tuple[float, subprocess.CompletedProcess[str]]:
        started = time.monotonic()
        result = subprocess.run(
            [vertex_env, *command, "--timeout", "3"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        return time.monotonic() - started, result

    emu.admin.fault("token", error="invalid_grant")
    at_once, result = timed()
    assert result.returncode == 7, result.stderr
    emu.admin.fault("token", drip=0.5, count=100)
    dripped, result = timed()
    assert result.returncode == 8, result.stderr
    assert "no answer within the 3s timeout" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert dripped < at_once + 3 + 1, f"{dripped:.1f} s, against {at_once:.1f} s refused at once"
    assert emu.admin.stats()["requests"]["token"] == 2  # the deadline left no room for a retry


_BAD_TOKEN_ANSWERS: dict[str, dict[str, object]] = {
    "a number": {"access_token": 12345, "expires_in": 3600},
    "a list": {"access_token": ["a"], "expires_in": 3600},
    "empty": {"access_token": "", "expires_in": 3600},
    "terminal escapes": {"access_token": "ya29.\x1b[31mred", "expires_in": 3600},
    "too long to cache": {"access_token": "ya29." + "a" * 70000, "expires_in": 3600},
    "already expired": {"access_token": "ya29.fine", "expires_in": -3600},
    "expires_in 1e20": {"access_token": "ya29.fine", "expires_in": 1e20},
    "expires_in Infinity": {"access_token": "ya29.fine", "expires_in": float("inf")},
}


@pytest.mark.parametrize("case", sorted(_BAD_TOKEN_ANSWERS))
def test_a_token_answer_that_is_no_usable_token_is_one_line_and_exit_8(
    emu: EmulatorServer, case: str
) -> None:
    """A token is a non-empty printable string within the size the cache holds, and expires_in a finite
    positive number; anything else is refused, never exported (issue 22 found exit 0 and tracebacks)."""
    emu.admin.fault(
        "token", status=200, body={**_BAD_TOKEN_ANSWERS[case], "token_type": "Bearer"}, count=10
    )
    result = subprocess.run(
        [str(Path(sys.executable).parent / "vertex-env"), "export", "--no-cache"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 8, result.stderr
    assert result.stdout == "false;\n"
    assert result.stderr.startswith("vertex-env: error: the token endpoint answered ")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert "\x1b" not in result.stderr and "ya29" not in result.stderr


@pytest.mark.parametrize("case", ["a path", "error_description", "a 100 KB value"])
def test_what_an_error_echoes_is_escaped_and_capped(emu: EmulatorServer, case: str) -> None:
    """Raw terminal escapes (from a path, from Google's error_description) never reach the terminal, a value
    never forges a second line, and a 100 KB value is not echoed whole."""
    env = dict(os.environ)
    if case == "a path":
        env["GOOGLE_APPLICATION_CREDENTIALS"] = "/nowhere/\x1b[2J\x1b]0;pwned\x07\nforged.json"
    elif case == "error_description":
        body = {"error": "invalid_grant", "error_description": "\x1b[2Jgone\nvertex-env: forged"}
        emu.admin.fault("token", status=400, body=body, count=10)
    else:
        env["GOOGLE_APPLICATION_CREDENTIALS"] = "/nowhere/" + "a" * 100_000
    result = subprocess.run(
        [str(Path(sys.executable).parent / "vertex-env"), "token", "--no-cache"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )
    assert result.returncode in (5, 7), result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("vertex-env: error:")
    assert len(result.stderr) < 1200


def test_the_timeout_is_validated_like_every_duration(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--timeout", "0"]) != 0
    assert "invalid timeout 0s" in capsys.readouterr().err


_NESTED = 100_000


@pytest.mark.parametrize(
    ("variable", "name", "text", "code", "said"),
    [
        (
            "VERTEX_ENV_CONFIG",
            "c.toml",
            "a=" + "[" * _NESTED + "]" * _NESTED,
            3,
            "nested too deeply",
        ),
        (
            "GOOGLE_APPLICATION_CREDENTIALS",
            "adc.json",
            '{"type": ' + "[" * _NESTED + "]" * _NESTED + "}",
            5,
            "not valid JSON",
        ),
        (
            "GOOGLE_APPLICATION_CREDENTIALS",
            "adc.json",
            '{"type": ["authorized_user"]}',
            5,
            "field 'type' is a list, not a string",
        ),
    ],
    ids=["100k-deep TOML", "100k-deep JSON", "an ADC type that is a list"],
)
def test_a_malformed_file_is_one_line_and_its_exit_code_not_a_traceback(
    isolated_machine: Path, variable: str, name: str, text: str, code: int, said: str
) -> None:
    path = isolated_machine / name
    path.write_text(text)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "vertex-env"), "token", "--no-cache"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, variable: str(path), "VERTEX_ENV_PROJECT": "test-project"},
    )
    assert result.returncode == code, result.stderr
    assert said in result.stderr and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr

"""The warm path (vertex_env.cli.entry): the same bytes and exit codes as the click CLI, and no click on the way.

Each case runs the same command line twice on the same machine state — through `fast.run` and through the
click CLI (`cli.main`) — and compares stdout, stderr and exit code; the table also says whether the warm path
may answer it itself or must leave it to click.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import vertex_env
from vertex_env.cli import entry as fast
from vertex_env.cli.group import main
from vertex_env.emulator import EmulatorServer, write_authorized_user


@pytest.fixture
def warm(monkeypatch: pytest.MonkeyPatch, isolated_machine: Path) -> Iterator[EmulatorServer]:
    """An emulator, a credential, and a token already in the cache (for the default and `dev` profiles)."""
    with EmulatorServer() as server:
        monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", server.host_port)
        monkeypatch.setenv("VERTEX_ENV_PROJECT", "test-project")
        adc = write_authorized_user(isolated_machine / "adc.json")
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
        config = isolated_machine / ".config" / "vertex-env" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text('[profiles.dev]\nlocation = "europe-west4"\nendpoint = "1234"\n')
        assert main(["token"]) == 0
        assert main(["token", "--profile", "dev"]) == 0
        assert main(["token", "--scopes", "https://www.googleapis.com/auth/cloud-platform"]) == 0
        yield server


FAST = True  # the warm path answers
CLICK = False  # the warm path steps aside

CASES: list[tuple[list[str], dict[str, str], bool]] = [
    (["token"], {}, FAST),
    (["export"], {}, FAST),
    (["export", "--format", "sh"], {}, FAST),
    (["export", "--format=fish"], {}, FAST),
    (["export", "--format", "powershell", "--google", "--legacy"], {}, FAST),
    (["export", "--format", "cmd"], {}, FAST),
    (["export", "--format", "json", "--google"], {}, FAST),
    (["export", "--format", "dotenv"], {}, FAST),
    (["export"], {"VERTEX_ENV_FORMAT": "fish"}, FAST),
    (["export", "--format", "sh"], {"VERTEX_ENV_FORMAT": "fish"}, FAST),
    (["export"], {"SHELL": "/usr/bin/fish"}, FAST),
    (["export"], {"VERTEX_ENV_GOOGLE": "1", "VERTEX_ENV_LEGACY": "no"}, FAST),
    (["export"], {"VERTEX_ENV_GOOGLE": "yes"}, FAST),
    (["export"], {"VERTEX_ENV_NO_CACHE": "0"}, FAST),
    (["token", "--profile", "dev"], {}, FAST),
    (["export", "--profile=dev", "--format", "sh"], {}, FAST),
    (["export"], {"VERTEX_ENV_PROFILE": "dev"}, FAST),
    (["token", "--scopes", "https://www.googleapis.com/auth/cloud-platform"], {}, FAST),
    (["export", "--location", "europe-west4", "--min-ttl", "5m"], {}, FAST),
    (["export", "--timeout", "5"], {}, FAST),
    (["token"], {"VERTEX_ENV_TIMEOUT": "3s"}, FAST),
    # the options that click once read through `envvar=`: now the table's, on both paths
    (["token"], {"VERTEX_ENV_PROFILE": "dev"}, FAST),
    (["token", "--profile", "dev"], {"VERTEX_ENV_PROFILE": "nope"}, FAST),
    (["export", "--format", "sh"], {"VERTEX_ENV_FORMAT": "jsn"}, FAST),
    (["export"], {"VERTEX_ENV_FORMAT": "json", "VERTEX_ENV_GOOGLE": "on"}, FAST),
    (["export", "--google"], {"VERTEX_ENV_GOOGLE": "0"}, FAST),
    (["export", "--legacy"], {"VERTEX_ENV_LEGACY": "maybe"}, FAST),
    (["export"], {"VERTEX_ENV_LEGACY": "TRUE"}, FAST),
    (["token"], {"VERTEX_ENV_NO_CACHE": "off"}, FAST),
    (["token"], {"VERTEX_ENV_NO_CACHE": ""}, FAST),
    (["token", "--debug"], {}, FAST),  # a cached token: no request to log, on either path
    (["export"], {"VERTEX_ENV_DEBUG": "1"}, FAST),
    # everything below is click's to answer
    (["token"], {"VERTEX_ENV_TIMEOUT": "soon"}, CLICK),
    (["export", "--timeout", "0"], {}, CLICK),
    (["token", "--help"], {}, CLICK),
    (["export", "-h"], {}, CLICK),
    (["token", "--porject", "x"], {}, CLICK),
    (["token", "extra"], {}, CLICK),
    (["token", "--project"], {}, CLICK),
    (["token", "--project", "--location"], {}, CLICK),
    (["token", "--google"], {}, CLICK),
    (["export", "--google=1"], {}, CLICK),
    (["export", "--format", "yaml"], {}, CLICK),
    (["export", "--format", "SH"], {}, CLICK),
    (["export"], {"VERTEX_ENV_FORMAT": "jsn"}, CLICK),
    (["export"], {"VERTEX_ENV_GOOGLE": "maybe"}, CLICK),
    (["export"], {"VERTEX_ENV_NO_CACHE": "1"}, CLICK),
    (["export", "--no-cache"], {}, CLICK),
    (["token", "--no-cache"], {}, CLICK),
    (["token"], {"VERTEX_ENV_NO_CACHE": "yes"}, CLICK),
    (["token"], {"VERTEX_ENV_NO_CACHE": "maybe"}, CLICK),
    (["export", "--no-cache=1"], {}, CLICK),
    (["token"], {"VERTEX_ENV_PROFILE": "nope"}, CLICK),
    (["token"], {"VERTEX_ENV_DEBUG": "maybe"}, CLICK),
    (["token"], {"VERTEX_ENV_PROFILE": "a b"}, CLICK),
    (["export"], {"VERTEX_ENV_FORMAT": "github"}, CLICK),
    (["export", "--format", "circleci"], {}, CLICK),
    (["export"], {"VERTEX_ENV_LEGACY": "maybe"}, CLICK),
    (["export", "--legacy", "--legacy"], {}, CLICK),
    (["export", "--unset"], {}, CLICK),
    (["export", "--location", "us-central1", "--location", "europe-west4"], {}, CLICK),
    (["export", "--location", "us central"], {}, CLICK),
    (["token", "--profile", "nope"], {}, CLICK),
    (["token", "--lifetime", "2h", "--impersonate", "sa@p.iam.gserviceaccount.com"], {}, CLICK),
    (["export", "--project", "other-project"], {}, FAST),  # same credential, same cache key
    (["export", "--quota-project", "billing-project"], {}, CLICK),  # another cache key: a miss
    (["token"], {"VERTEX_ENV_CREDENTIALS": "/nonexistent.json"}, CLICK),
    (["status"], {}, CLICK),
    (["--version"], {}, CLICK),
    ([], {}, CLICK),
]


@pytest.mark.parametrize(
    ("argv", "extra_env", "answered"), CASES, ids=[" ".join(c[0]) + str(c[1]) for c in CASES]
)
def test_the_warm_path_prints_what_click_prints(
    argv: list[str],
    extra_env: dict[str, str],
    answered: bool,
    warm: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in extra_env.items():
        monkeypatch.setenv(name, value)
    issued = warm.state.stats()["tokens_issued"]
    code = fast.run(list(argv))
    fast_out = capsys.readouterr()
    assert (code is not None) == answered
    if code is None:
        assert fast_out.out == fast_out.err == "", "the warm path printed before stepping aside"
    assert warm.state.stats()["tokens_issued"] == issued, "the warm path never mints"
    click_code = main(list(argv))
    click_out = capsys.readouterr()
    if answered:
        assert (code, fast_out.out, fast_out.err) == (click_code, click_out.out, click_out.err)
        assert code == 0 and fast_out.out


def test_the_warm_path_parses_every_option_the_table_gives_its_commands() -> None:
    """No second list of flags: each option of the table for `token`/`export` is read by the warm parser."""
    from vertex_env.config import options as option_table

    for command, kinds in option_table.COMMAND_KINDS.items():
        for opt in option_table.ALL_OPTIONS:
            args = [opt.flag] if opt.switch else [opt.flag, "some-value"]
            expected = {opt.name: True if opt.switch else args[1]}
            assert fast.parse(command, list(args)) == (expected if opt.kind in kinds else None)


def test_no_click_option_of_the_table_reads_its_variable_through_click() -> None:
    """Every table option's variable is read by `option_table.value`/`environment.resolve`, on both paths alike."""
    import click

    from vertex_env.cli import group as cli
    from vertex_env.config import options as option_table

    table_flags = {opt.flag for opt in option_table.ALL_OPTIONS}
    seen: set[str] = set()
    context = click.Context(cli.cli)
    for name in cli.COMMANDS:
        command = cli.cli.get_command(context, name)
        assert command is not None
        for param in command.params:
            flags = set(param.opts) & table_flags
            if flags:
                assert param.envvar is None, (name, flags)
                seen |= flags
    assert seen == table_flags


def test_a_token_with_too_little_life_left_is_left_to_click(
    warm: EmulatorServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fast.run(["token"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(time, "time", lambda: time.monotonic() + 10**10)
    assert fast.run(["token"]) is None


def test_the_console_script_serves_warm_commands_without_importing_click(
    warm: EmulatorServer, isolated_machine: Path
) -> None:
    """`python -X importtime` of the warm `export` and `token`: no click, and only modules from the list."""
    allowed_ours = {
        "vertex_env",
        "vertex_env._version",
        "vertex_env.cli.entry",
        "vertex_env.config.profile",
        "vertex_env.config.values",
        "vertex_env.config.options",
        "vertex_env.config.file",
        "vertex_env.config.models",  # the profile's models table: imports values, errors and record only
        "vertex_env.config.routing",
        "vertex_env.errors",
        "vertex_env.environment",
        "vertex_env.core.source",
        "vertex_env.core.token",
        "vertex_env.system.digest",
        "vertex_env.core.cache",
        "vertex_env.system.files",
        "vertex_env.core.credentials",
        "vertex_env.sinks.render",
        "vertex_env.system.quoting",
        "vertex_env.system.record",  # the records' base (Token, Profile, …): imports nothing
        # the layers' packages: each __init__ is a docstring, nothing more
        "vertex_env.cli",
        "vertex_env.config",
        "vertex_env.core",
        "vertex_env.sinks",
        "vertex_env.system",
    }
    never = {
        "click",
        "google",
        "keyring",
        "aiohttp",
        "tomlkit",
        "dotenv",
        "requests",
        "urllib3",
        "asyncio",
        "ssl",
        "http",
        "email",
        "subprocess",
        # (ipaddress and urllib.parse still come with pathlib, which config, cache and credentials use)
        "tomllib",  # no config file here
        "importlib.metadata",
        "typing",
        "random",  # (secrets) only to name a temp file when writing
        "datetime",
        "hashlib",  # the cache key's SHA-256 comes from CPython's built-in one (vertex_env.system.digest)
        "_hashlib",
        "threading",  # the token core's locks are _thread's
    }
    (isolated_machine / ".config" / "vertex-env" / "config.toml").unlink()
    bare = imports([])
    for args in (["export", "--format", "sh"], ["token"]):
        imported = imports(args) - bare
        ours = {name for name in imported if name.split(".")[0] == "vertex_env"}
        assert ours <= allowed_ours, ours - allowed_ours
        assert not {n for n in imported if n in never or n.split(".")[0] in never}
        # (the stdlib's probes for Jython's `org.python` are no third-party package)
        tops = {
            name.split(".")[0] for name in imported if importlib.util.find_spec(name.split(".")[0])
        }
        assert {t for t in tops if t not in sys.stdlib_module_names} == {"vertex_env"}


def test_the_option_table_and_renderers_import_nothing_heavy() -> None:
    """config (and the table, checks and file reading under it) and render: no dataclasses (inspect, ast), no
    pathlib (urllib.parse, ipaddress), no typing, no json — the warm path's own share of its start-up."""
    loaded = imports_of(
        "import vertex_env.config.profile, vertex_env.sinks.render, vertex_env.cli.entry"
    )
    assert not loaded & {"dataclasses", "inspect", "pathlib", "typing", "json", "urllib.parse"}
    assert {
        "vertex_env.config.profile",
        "vertex_env.config.options",
        "vertex_env.sinks.render",
    } <= loaded


def imports_of(code: str) -> set[str]:
    """The modules `code` imports beyond a bare start, without site (see `imports`)."""
    root = str(Path(vertex_env.__file__).resolve().parent.parent)
    result = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            f"import sys; sys.path[:0] = [{root!r}]; {code}; print(*sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    bare = subprocess.run(
        [sys.executable, "-S", "-c", "import sys; print(*sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(result.stdout.split()) - set(bare.stdout.split())


def imports(args: list[str]) -> set[str]:
    """The modules `python -X importtime` reports for the entry point with `args` ([]: a bare start).

    Run without site (-S), with vertex_env and the venv's packages put on sys.path by hand: a development
    venv's editable finder imports pathlib and more at every start, which would hide them from the diff.
    """
    root = str(Path(vertex_env.__file__).resolve().parent.parent)
    paths = [root, *(p for p in sys.path if p.endswith("site-packages"))]
    setup = f"import sys; sys.path[:0] = {paths!r}; "
    code = setup + (
        "from vertex_env.cli.entry import entry_point; entry_point()" if args else "pass"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout or not args
    return {
        line.split("|")[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "imported package" not in line
    }


@pytest.mark.parametrize("command", [["export"], ["token"], ["export", "--format", "dotenv"]])
def test_a_cold_export_or_token_never_imports_aiohttp(
    emu: EmulatorServer, command: list[str]
) -> None:
    """aiohttp is installed for serve, run --proxy, the emulator and demo; a mint through click and
    google-auth (no cache: the cold path) must not load it."""
    code = (
        "import sys\nfrom vertex_env.cli.group import main\n"
        f"rc = main({[*command, '--no-cache']!r})\n"
        "sys.stderr.write('\\nloaded=' + ','.join(sorted(m for m in ('aiohttp', 'yarl', 'multidict') "
        "if m in sys.modules)) + '\\n')\nsys.exit(rc)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()  # it printed the variables or the token
    assert result.stderr.strip().splitlines()[-1] == "loaded="


@pytest.mark.parametrize("command", [["export"], ["token"]])
def test_python_m_vertex_env_export_or_token_cold_never_imports_aiohttp(
    emu: EmulatorServer, command: list[str]
) -> None:
    """`python -m vertex_env export` as a user types it, the first run (no cached token: click, google-auth and a
    mint), under -X importtime: aiohttp and its packages are not among what it loads."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "vertex_env", *command],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()  # the variables or the token
    loaded = {
        line.split("|")[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "google.auth" in loaded  # the cold path: it minted
    assert not {m for m in loaded if m.split(".")[0] in ("aiohttp", "yarl", "multidict")}

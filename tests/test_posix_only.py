"""On a system without POSIX file locks (Windows), vertex-env imports, and every command stops with one line.

Windows is simulated the way it differs for vertex-env: `fcntl` does not import (`sys.modules['fcntl'] = None`
before anything else, in a fresh interpreter). Before this, `import vertex_env.api` and every command died with
`ModuleNotFoundError: fcntl`.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from vertex_env.cli.group import COMMANDS
from vertex_env.errors import EXIT_CODES, NotPosixError

WITHOUT_FCNTL = "import sys\nsys.modules['fcntl'] = None\n"
LINE = "vertex-env needs a POSIX system (Linux, macOS); on Windows use WSL\n"


def without_fcntl(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_FCNTL + code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "module",
    [
        "vertex_env",
        "vertex_env.api",
        "vertex_env.environment",
        "vertex_env.errors",
        "vertex_env.testing",
        "vertex_env.emulator",
        "vertex_env.cli.group",
    ],
)
def test_the_public_modules_import_without_fcntl(module: str) -> None:
    result = without_fcntl(
        f"import {module}\nassert 'fcntl' not in [m for m in sys.modules if sys.modules[m]]"
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "args", [[name] for name in COMMANDS] + [[], ["--help"], ["token", "--project", "p"]]
)
def test_every_command_says_posix_in_one_line_and_exits_14(args: list[str]) -> None:
    entry = (
        "sys.argv[0] = 'vertex-env'\nfrom vertex_env.cli.entry import entry_point\nentry_point()"
    )
    result = without_fcntl(entry, *args)
    assert (result.returncode, result.stderr) == (14, LINE)
    # export keeps its promise that `eval "$(vertex-env export)"` fails with it; nothing else is printed.
    assert result.stdout == ("false;\n" if args[:1] == ["export"] else "")


def test_python_dash_m_says_the_same() -> None:
    result = without_fcntl(
        "import runpy\nsys.argv = ['vertex-env', 'status']\nrunpy.run_module('vertex_env', run_name='__main__')"
    )
    assert (result.returncode, result.stderr) == (14, LINE)


def test_a_lock_the_python_api_takes_raises_the_same_message() -> None:
    code = (
        "import tempfile, pathlib\n"
        "from vertex_env.errors import NotPosixError\n"
        "from vertex_env.system.files import locked\n"
        "try:\n"
        "    with locked(pathlib.Path(tempfile.mkdtemp()) / 'lock', 1, what='x'):\n"
        "        pass\n"
        "except NotPosixError as err:\n"
        "    print(err.exit_code, err)\n"
    )
    result = without_fcntl(code)
    assert result.stdout == "14 " + LINE, result.stderr


def test_the_exit_code_is_documented() -> None:
    assert NotPosixError.exit_code in EXIT_CODES
    assert NotPosixError.MESSAGE + "\n" == LINE

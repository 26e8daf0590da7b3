"""dotenv writer: every reader reads our values, every other byte is kept, writes are atomic and locked."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import random
import re
import signal
import socketserver
import stat
import string
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from conftest import require_tool, start_emulator
from dotenv import dotenv_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vertex_env.errors import LockTimeoutError, SinkError
from vertex_env.sinks.dotenv_file import (
    ALLOWED_VALUE_CHARS,
    update_dotenv,
    update_dotenv_text,
    write_dotenv,
)
from vertex_env.system.files import cache_dir, writers_lock_path

TOKEN = "ya29.a0AfB_byC-1x2Y3z_ABCdef-GHI.jkl_MNO-pqr"
URL = "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/endpoints/openapi"
REAL = {"OPENAI_API_KEY": TOKEN, "OPENAI_BASE_URL": URL, "VERTEX_ENV_EXPIRES_AT": "1767225600"}
OURS = tuple(REAL)

# Refused although every reader below takes them literally: they are glob or brace characters elsewhere.
CONSERVATIVELY_REFUSED = set("*^{}")


def allowed_samples() -> dict[str, str]:
    """Each allowed character alone, first, inside, last; plus the real values and the empty value."""
    values = ["", TOKEN, URL, "1767225600", "".join(sorted(ALLOWED_VALUE_CHARS - {"="})) + "="]
    for c in sorted(ALLOWED_VALUE_CHARS):
        values += [f"a{c}b", f"ab{c}", f"a:{c}", f"x{c}{c}"] + ([] if c == "=" else [c, f"{c}ab"])
    return {f"K{i}": v for i, v in enumerate(values)}


# --- the readers ---------------------------------------------------------------------------------


def read_python_dotenv(path: Path) -> dict[str, str | None]:
    return dict(dotenv_values(path))


def read_env0(out: bytes) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in out.decode("utf-8").split("\0") if "=" in item)
    return {k: v for k, v in pairs}


def read_posix_sh(path: Path, shell: str = "dash") -> dict[str, str]:
    proc = subprocess.run(
        [require_tool(shell), "-c", 'set -a; . "$1" && exec env -0', shell, str(path)],
        env={"PATH": os.environ["PATH"], "HOME": os.environ["HOME"]},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return read_env0(proc.stdout)


def read_direnv(path: Path) -> dict[str, str]:
    direnv = require_tool("direnv")
    (path.parent / ".envrc").write_text(f"dotenv {path.name}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIRENV_")}
    subprocess.run([direnv, "allow", str(path.parent)], env=env, check=True, capture_output=True)
    proc = subprocess.run(
        [direnv, "exec", str(path.parent), "env", "-0"],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return read_env0(proc.stdout)


def read_docker_model(path: Path) -> dict[str, str]:
    """docker's documented --env-file rule: leading blanks trimmed, `#` lines skipped, value = text after `=`."""
    result = {}
    for line in path.read_bytes().decode("utf-8").splitlines():
        line = line.lstrip()
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            result[name] = value
    return result


class _FakeDockerDaemon(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    created: list[dict[str, object]]


class _FakeDockerHandler(http.server.BaseHTTPRequestHandler):
    """Just enough of the Engine API for `docker create`: it records the container config, then refuses."""

    protocol_version = "HTTP/1.1"
    server: _FakeDockerDaemon

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Api-Version", "1.43")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Api-Version", "1.43")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._reply(200, "OK" if self.path.endswith("/_ping") else {})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.endswith("/containers/create"):
            self.server.created.append(json.loads(body))
        self._reply(400, {"message": "fake daemon: recorded"})


def read_docker(path: Path) -> dict[str, str]:
    """The real docker CLI parses --env-file; a fake daemon on a unix socket receives the resulting Env."""
    docker = require_tool("docker")
    sock = path.parent / "docker.sock"
    server = _FakeDockerDaemon(str(sock), _FakeDockerHandler)
    server.created = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        proc = subprocess.run(
            [docker, "create", "--env-file", str(path), "vertex-env-test-image"],
            env={
                "PATH": os.environ["PATH"],
                "HOME": os.environ["HOME"],
                "DOCKER_HOST": f"unix://{sock}",
            },
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert server.created, proc.stderr
    env = server.created[0]["Env"]
    assert isinstance(env, list)
    return dict(item.split("=", 1) for item in env)


READERS: dict[str, Callable[[Path], Mapping[str, str | None]]] = {
    "python-dotenv": read_python_dotenv,
    "dash": read_posix_sh,
    "direnv": read_direnv,
    "docker": read_docker,
    "docker-rule": read_docker_model,
}


@pytest.mark.parametrize("reader", READERS)
def test_every_reader_reads_every_allowed_value(reader: str, tmp_path: Path) -> None:
    values = {**allowed_samples(), **REAL}
    target = write_dotenv(tmp_path / ".env", values)
    got = READERS[reader](target)
    assert {k: got.get(k) for k in values} == values


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_bash_and_zsh_read_every_allowed_value(shell: str, tmp_path: Path) -> None:
    values = {**allowed_samples(), **REAL}
    got = read_posix_sh(write_dotenv(tmp_path / ".env", values), shell)
    assert {k: got.get(k) for k in values} == values


def test_each_refused_character_is_misread_by_some_reader(tmp_path: Path) -> None:
    """The allowed set is not arbitrary: every other printable ASCII character breaks a reader."""
    refused = sorted(
        set(string.printable) - ALLOWED_VALUE_CHARS - CONSERVATIVELY_REFUSED - set("\n\r\x0b\x0c")
    )
    misread: set[str] = set()
    for c in refused:
        directory = tmp_path / f"c{ord(c)}"
        directory.mkdir()
        path = directory / ".env"
        values = {"K0": f"a{c}b", "K1": c, "K2": f"{c}ab", "K3": f"ab{c}", "K4": f"a:{c}"}
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        for reader in ("python-dotenv", "dash", "direnv"):
            try:
                got = READERS[reader](path)
            except AssertionError:  # the reader failed outright
                misread.add(c)
                break
            if {k: got.get(k) for k in values} != values:
                misread.add(c)
                break
    assert misread == set(refused)


def test_a_value_starting_with_equals_is_refused_for_zsh(tmp_path: Path) -> None:
    with pytest.raises(SinkError):
        write_dotenv(tmp_path / ".env", {"A": "=x"})


@pytest.mark.parametrize(
    "value",
    [
        "a b",
        " a",
        "a ",
        "a#b",
        "$HOME",
        "${HOME}",
        "a'b",
        'a"b',
        "a\\b",
        "`id`",
        "a;b",
        "~",
        "a\nb",
        "a\rb",
        "\t",
        "caf\u00e9",
        "a&b",
        "a|b",
        "(a)",
        "<a>",
        "a*",
        "^a",
        "{a}",
        "\0",
    ],
)
def test_refused_values_raise_without_touching_the_file(value: str, tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(b"# mine\nOPENAI_API_KEY=old\n")
    before = path.stat()
    with pytest.raises(SinkError) as info:
        write_dotenv(path, {"OPENAI_BASE_URL": URL, "OPENAI_API_KEY": f"ya29.{value}"})
    message = str(info.value)
    assert "OPENAI_API_KEY" in message
    assert "ya29" not in message
    assert "allowed:" in message
    assert path.read_bytes() == b"# mine\nOPENAI_API_KEY=old\n"
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


def test_invalid_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SinkError):
        write_dotenv(tmp_path / ".env", {"A-B": "x"})
    assert not (tmp_path / ".env").exists()


# --- byte preservation -------------------------------------------------------------------------

garbage_chars = st.characters(
    codec="utf-8",
    blacklist_characters="\0\r\n'\"\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
)
OUR_LINE = re.compile(r"\s*(?:export\s+)?'?(?:" + "|".join(OURS) + ")")


@st.composite
def dotenv_files(draw: st.DrawFn) -> tuple[str, list[tuple[str | None, str, str]]]:
    """A file as (our key or None, text, line ending) lines; our-key lines keep indent + `export ` prefix."""
    lines: list[tuple[str | None, str, str]] = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["comment", "blank", "other", "export", "garbage", "ours"]))
        eol = draw(st.sampled_from(["\n", "\r\n"]))
        if kind == "comment":
            text = "#" + draw(st.text(garbage_chars, max_size=20))
        elif kind == "blank":
            text = draw(st.sampled_from(["", "  ", "\t"]))
        elif kind == "other":
            text = (
                draw(st.sampled_from(["OTHER", "PATH", "openai_api_key", "OPENAI_API_KEY_2"]))
                + "="
                + draw(st.sampled_from(["x", "'quoted # not comment'", '"a b"', "v # comment", ""]))
            )
        elif kind == "export":
            text = (
                "export OTHER_"
                + str(draw(st.integers(0, 9)))
                + "="
                + draw(st.text(garbage_chars, max_size=10))
            )
        elif kind == "garbage":
            text = draw(st.text(garbage_chars, max_size=30))
            if OUR_LINE.match(text):
                text = "#" + text
        else:
            key = draw(st.sampled_from(OURS))
            prefix = draw(st.sampled_from(["", "export ", "export\t", "  ", "  export  "]))
            old = draw(st.sampled_from(["old", "'old'", '"old value"', "", "old # comment"]))
            sep = draw(st.sampled_from(["=", " = "]))
            lines.append((key, prefix, eol))
            text = f"{prefix}{key}{sep}{old}"
        if kind != "ours":
            lines.append((None, text, eol))
        else:
            lines[-1] = (lines[-1][0], text, eol)
    bom = draw(st.sampled_from(["", "\ufeff"]))
    no_final_newline: bool = bool(lines) and draw(st.booleans())
    if no_final_newline:
        last_key, last_text, _ = lines[-1]
        lines[-1] = (last_key, last_text, "")  # no newline at end of file
    return bom, lines


def expected_after_write(
    bom: str, lines: list[tuple[str | None, str, str]], values: dict[str, str]
) -> str:
    out = []
    for key, text, eol in lines:
        if key is None:
            out.append(text + eol)
        else:
            prefix = re.match(r"\s*(?:export\s+)?", text)
            assert prefix
            out.append(prefix.group(0) + f"{key}={values[key]}" + eol)
    body = "".join(out)
    missing = [k for k in values if k not in {key for key, _, _ in lines}]
    newline = next((eol for _, _, eol in lines if eol), "\n")
    if missing:
        if body and not body.endswith("\n"):
            body += newline
        body += "".join(f"{k}={values[k]}{newline}" for k in missing)
    return bom + body


@pytest.mark.slow
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(file=dotenv_files())
def test_only_our_lines_change(
    file: tuple[str, list[tuple[str | None, str, str]]], tmp_path: Path
) -> None:
    bom, lines = file
    original = bom + "".join(text + eol for _, text, eol in lines)
    path = tmp_path / "prop.env"
    path.write_bytes(original.encode("utf-8"))
    write_dotenv(path, REAL)
    written = path.read_bytes().decode("utf-8")
    assert written == expected_after_write(bom, lines, REAL)
    read_back = dotenv_values(path)
    before = dotenv_values(stream=io.StringIO(original))
    assert {k: read_back[k] for k in REAL} == REAL
    assert {k: v for k, v in read_back.items() if k not in REAL} == {
        k: v for k, v in before.items() if k not in REAL
    }


def test_example_file_keeps_comments_crlf_and_export_prefix(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(
        b"# header\r\n\r\nexport OPENAI_API_KEY=ya29.old\r\nOTHER='x y' # keep\r\nnot a binding\r\n"
        b"OPENAI_BASE_URL=http://old # stale\r\nLAST=1"
    )
    write_dotenv(path, REAL)
    assert (
        path.read_bytes()
        == (
            f"# header\r\n\r\nexport OPENAI_API_KEY={TOKEN}\r\nOTHER='x y' # keep\r\nnot a binding\r\n"
            f"OPENAI_BASE_URL={URL}\r\nLAST=1\r\nVERTEX_ENV_EXPIRES_AT=1767225600\r\n"
        ).encode()
    )


def test_every_binding_of_a_repeated_key_gets_the_new_value(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(b"OPENAI_API_KEY=first\nA=1\nexport OPENAI_API_KEY=second\n")
    write_dotenv(path, {"OPENAI_API_KEY": TOKEN})
    assert (
        path.read_bytes()
        == f"OPENAI_API_KEY={TOKEN}\nA=1\nexport OPENAI_API_KEY={TOKEN}\n".encode()
    )


def test_bytes_that_are_not_utf8_are_kept(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(b"# caf\xe9 \xff\xfe\nOPENAI_API_KEY=old\n")
    write_dotenv(path, {"OPENAI_API_KEY": TOKEN})
    assert path.read_bytes() == b"# caf\xe9 \xff\xfe\nOPENAI_API_KEY=" + TOKEN.encode() + b"\n"


def test_key_inside_a_multiline_value_is_not_a_binding() -> None:
    text = 'NOTE="line\nOPENAI_API_KEY=inside\n"\n'
    assert update_dotenv_text(text, {"OPENAI_API_KEY": "new"}) == text + "OPENAI_API_KEY=new\n"


SWALLOWING = [
    # (file, line named): docker and sh read DATABASE_URL and X as variables of their own
    (b'OPENAI_API_KEY="sk-old\nDATABASE_URL=postgres://db\nX=1"\nY=2\n', 1),
    (b"A=1\r\n\r\n  export OPENAI_API_KEY='sk-old\r\nDATABASE_URL=postgres://db\r\nX=1\r\n", 3),
    (b'# x\nOPENAI_BASE_URL="http://old\nDATABASE_URL=postgres://db\n', 2),
    (b'OPENAI_API_KEY = "sk-old" DATABASE_URL=postgres://db\n', 1),
]


@pytest.mark.parametrize(("content", "line"), SWALLOWING)
def test_a_quote_on_our_key_that_swallows_lines_is_refused_untouched(
    content: bytes, line: int, tmp_path: Path
) -> None:
    path = tmp_path / ".env"
    path.write_bytes(content)
    path.chmod(0o644)
    before = path.stat()
    with pytest.raises(SinkError, match=rf"cannot rewrite {re.escape(str(path))}: line {line}: "):
        write_dotenv(path, REAL)
    assert path.read_bytes() == content
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_mode) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_mode,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


def test_a_multiline_quoted_value_of_another_key_is_still_kept() -> None:
    text = 'NOTE="a\nb"\nOPENAI_API_KEY="old" # c\n'
    assert (
        update_dotenv_text(text, {"OPENAI_API_KEY": "new"}) == 'NOTE="a\nb"\nOPENAI_API_KEY=new\n'
    )


@pytest.mark.parametrize("command", [["write"], ["daemon", "--once", "--write"]])
def test_write_and_daemon_refuse_a_swallowing_quote_with_one_line_and_exit_9(
    command: list[str], isolated_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = b'OPENAI_API_KEY="sk-old\nDATABASE_URL=postgres://db\nX=1"\n'
    path = isolated_machine / "app" / ".env"
    path.parent.mkdir()
    path.write_bytes(content)
    emu = start_emulator(monkeypatch, isolated_machine)
    try:
        result = subprocess.run(
            [str(Path(sys.executable).with_name("vertex-env")), *command, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        emu.stop()
    assert result.returncode == 9, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"cannot rewrite {path}: line 1: the quoted value of OPENAI_API_KEY" in result.stderr
    assert "ya29" not in result.stderr and "sk-old" not in result.stderr
    assert path.read_bytes() == content
    assert sorted(p.name for p in path.parent.iterdir()) == [".env"]


def test_unchanged_file_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(f"OPENAI_API_KEY={TOKEN}\n".encode())
    inode = path.stat().st_ino
    write_dotenv(path, {"OPENAI_API_KEY": TOKEN})
    assert path.stat().st_ino == inode


# --- file system behaviour ---------------------------------------------------------------------


def test_new_file_is_0600(tmp_path: Path) -> None:
    target = write_dotenv(tmp_path / ".env", REAL)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert dotenv_values(target) == REAL


def test_an_owner_only_mode_is_kept(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("A=1\n")
    path.chmod(0o400)
    write_dotenv(path, REAL)
    assert stat.S_IMODE(path.stat().st_mode) == 0o400


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o666, 0o604])
def test_a_mode_readable_by_others_is_tightened_to_0600_and_reported(
    tmp_path: Path, mode: int
) -> None:
    path = tmp_path / ".env"
    path.write_text("A=1\n")
    path.chmod(mode)
    written = update_dotenv(path, REAL)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert written.tightened_from == mode
    assert update_dotenv(path, REAL).tightened_from is None, "said once"


def test_a_file_of_another_user_is_refused_untouched(
    tmp_path: Path, second_user: tuple[int, int]
) -> None:
    path = tmp_path / ".env"
    path.write_text("A=1\n")
    path.chmod(0o644)
    os.chown(path, *second_user)
    with pytest.raises(SinkError, match="belongs to another user"):
        write_dotenv(path, REAL)
    assert path.read_text() == "A=1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_the_writers_lock_is_0600_in_the_private_directory_not_beside_the_target(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    write_dotenv(project / ".env", REAL)
    assert sorted(p.name for p in project.iterdir()) == [".env"]
    lock = writers_lock_path(project / ".env", cache_dir())
    assert lock.parent == cache_dir()
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache_dir().stat().st_mode) == 0o700


def test_the_writers_lock_is_keyed_by_the_real_path(tmp_path: Path) -> None:
    real = tmp_path / "real.env"
    link = tmp_path / "link.env"
    link.symlink_to(real)
    assert writers_lock_path(link, cache_dir()) == writers_lock_path(real, cache_dir())
    assert writers_lock_path(tmp_path / "other.env", cache_dir()) != writers_lock_path(
        real, cache_dir()
    )


LOCK_HOLDER = textwrap.dedent(
    """
    import fcntl, os, sys, time
    if sys.argv[2] == "dir":
        fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
    else:
        fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    time.sleep(60)
    """
)


@contextlib.contextmanager
def lock_held_by_another_process(path: Path, kind: str = "file") -> Iterator[None]:
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(path), kind], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        yield
    finally:
        holder.kill()
        holder.wait(timeout=10)
        assert holder.stdout is not None
        holder.stdout.close()


def test_a_writers_lock_held_past_the_deadline_is_exit_9_and_the_file_is_untouched(
    tmp_path: Path,
    isolated_machine: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from vertex_env.cli.group import main
    from vertex_env.sinks import dotenv_file

    monkeypatch.setattr(dotenv_file, "LOCK_TIMEOUT", 0.5)
    path = tmp_path / ".env"
    path.write_bytes(b"OPENAI_API_KEY=old\n")
    path.chmod(0o600)
    before = path.stat()
    lock = writers_lock_path(path, cache_dir())
    cache_dir().mkdir(mode=0o700, exist_ok=True)
    emu = start_emulator(monkeypatch, isolated_machine)
    try:
        with lock_held_by_another_process(lock):
            code = main(["write", str(path)])
    finally:
        emu.stop()
    err = capsys.readouterr().err
    assert code == 9, err
    assert err.startswith(f"vertex-env: error: {path} is locked by another process (waited 0.5 s")
    assert err.count("\n") == 1
    assert path.read_bytes() == b"OPENAI_API_KEY=old\n"
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


def test_an_unusable_private_directory_falls_back_to_locking_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A symlink planted at the private directory: nothing is created through it, nothing beside the target,
    and writers still exclude each other (on the target's folder, within the deadline)."""
    from vertex_env.sinks import dotenv_file

    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir()
    cache_dir().parent.mkdir(parents=True, exist_ok=True)
    cache_dir().symlink_to(elsewhere)
    project = tmp_path / "project"
    project.mkdir()
    write_dotenv(project / ".env", REAL)
    assert dotenv_values(project / ".env") == REAL
    assert sorted(p.name for p in project.iterdir()) == [".env"]
    assert list(elsewhere.iterdir()) == []
    monkeypatch.setattr(dotenv_file, "LOCK_TIMEOUT", 0.3)
    with lock_held_by_another_process(project, "dir"), pytest.raises(LockTimeoutError):
        write_dotenv(project / ".env", {"OPENAI_API_KEY": "new"})
    assert dotenv_values(project / ".env") == REAL


def test_symlink_is_followed_and_stays_a_link(tmp_path: Path) -> None:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    real = real_dir / "shared.env"
    real.write_text("A=1\n")
    real.chmod(0o644)
    link = tmp_path / ".env"
    link.symlink_to(real)
    assert write_dotenv(link, REAL) == real
    assert link.is_symlink()
    assert dotenv_values(real) == {"A": "1", **REAL}
    assert stat.S_IMODE(real.stat().st_mode) == 0o600, "the file it points at is tightened"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "real"]


def test_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / ".env"
    link.symlink_to(tmp_path / "target.env")
    assert write_dotenv(link, REAL) == tmp_path / "target.env"
    assert link.is_symlink()
    assert dotenv_values(link) == REAL


FAILING_WRITER = textwrap.dedent(
    """
    import resource, signal, sys
    from vertex_env.sinks.dotenv_file import write_dotenv
    from vertex_env.errors import SinkError
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    try:
        write_dotenv(sys.argv[1], {"OPENAI_API_KEY": "x" * 100000})
    except SinkError as exc:
        print(exc)
        sys.exit(9)
    """
)


def test_failed_write_leaves_old_file_and_no_temp_file(tmp_path: Path) -> None:
    """A real failure after the temp file exists (the file size limit), no mocks."""
    path = tmp_path / ".env"
    path.write_bytes(b"OPENAI_API_KEY=old\n")
    proc = subprocess.run(
        [sys.executable, "-c", FAILING_WRITER, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 9, proc.stderr
    assert "cannot write" in proc.stdout
    assert "xxxx" not in proc.stdout
    assert path.read_bytes() == b"OPENAI_API_KEY=old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


KILLED_BEFORE_RENAME = textwrap.dedent(
    """
    import os, sys
    from vertex_env.sinks.dotenv_file import write_dotenv
    def die(*args, **kwargs):
        os._exit(3)  # killed between fsync and rename
    os.replace = die
    write_dotenv(sys.argv[1], {"OPENAI_API_KEY": "ya29.killed"})
    """
)


def test_our_stale_temp_files_are_swept_on_the_next_write_and_nothing_else(
    tmp_path: Path, second_user: tuple[int, int]
) -> None:
    path = tmp_path / ".env"
    path.write_bytes(b"A=1\n")
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_BEFORE_RENAME, str(path)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    (leftover,) = [p for p in tmp_path.iterdir() if p.name != ".env"]
    assert re.fullmatch(r"\.\.env\.vertex-env-[0-9a-f]{12}\.tmp", leftover.name)
    hex12 = "0123456789ab"
    not_ours = {
        "..env.vertex-env-abc.tmp": "x",  # not our name
        ".env.bak": "x",
        f"..env.local.vertex-env-{hex12}.tmp": "x",  # another target's
        f"..env.vertex-env-{hex12}.tmp.orig": "x",
    }
    for name, text in not_ours.items():
        (tmp_path / name).write_text(text)
    foreign = tmp_path / f"..env.vertex-env-{'b' * 12}.tmp"
    foreign.write_text("theirs")
    os.chown(foreign, *second_user)
    linked = tmp_path / f"..env.vertex-env-{'c' * 12}.tmp"
    linked.symlink_to(tmp_path / ".env.bak")
    old = time.time() - 600
    for entry in tmp_path.iterdir():
        os.utime(entry, (old, old), follow_symlinks=False)
    os.utime(path, None)
    fresh = tmp_path / f"..env.vertex-env-{'d' * 12}.tmp"
    fresh.write_text("a live writer's")
    write_dotenv(path, REAL)
    assert not leftover.exists(), "the killed writer's temp file (holding a token) is swept"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".env", *not_ours, foreign.name, linked.name, fresh.name]
    )
    assert (tmp_path / ".env.bak").read_text() == "x"
    assert foreign.read_text() == "theirs" and fresh.read_text() == "a live writer's"


def test_missing_directory_is_a_sink_error(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="cannot write"):
        write_dotenv(tmp_path / "nope" / ".env", REAL)


CONCURRENT_WRITER = textwrap.dedent(
    """
    import sys
    from vertex_env.sinks.dotenv_file import write_dotenv
    path, i = sys.argv[1], int(sys.argv[2])
    for j in range(20):
        write_dotenv(path, {f"W{i}_{j}": f"v{i}.{j}", "SHARED": f"w{i}"})
    """
)


@pytest.mark.slow
def test_concurrent_writer_processes_lose_no_key(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("# shared by 8 writers\n")
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, str(path), str(i)])
        for i in range(8)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0] * 8
    values = dotenv_values(path)
    assert {k: v for k, v in values.items() if k.startswith("W")} == {
        f"W{i}_{j}": f"v{i}.{j}" for i in range(8) for j in range(20)
    }
    assert path.read_text().startswith("# shared by 8 writers\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"], "no temp or lock file left"


LOOPING_WRITER = textwrap.dedent(
    """
    import sys
    from vertex_env.sinks.dotenv_file import write_dotenv
    path = sys.argv[1]
    version = 0
    while True:
        version += 1
        write_dotenv(path, {f"K{k}": f"v{version}." + "x" * 20000 for k in range(10)})
        if version == 1:  # the kill lands after at least one write, however slow the machine
            print("ready", flush=True)
    """
)


def complete_versions(path: Path) -> Iterator[int]:
    values = dotenv_values(path)
    versions = {v.split(".")[0] for v in values.values() if v}
    assert len(versions) == 1, "a mix of two versions"
    assert set(values) == {f"K{k}" for k in range(10)}
    assert all(
        v is not None and len(v) == len(next(iter(versions))) + 20001 for v in values.values()
    )
    yield int(versions.pop()[1:])


@pytest.mark.slow
def test_sigkill_mid_write_leaves_a_complete_file(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    write_dotenv(path, {f"K{k}": "v0." + "x" * 20000 for k in range(10)})
    rng = random.Random(1)
    seen: list[int] = []
    for _ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", LOOPING_WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
        seen += complete_versions(path)
    assert seen[-1] > 0, "the writer never completed a write: the kills proved nothing"


def test_an_unchanged_0644_file_is_tightened_in_place(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(f"OPENAI_API_KEY={TOKEN}\n".encode())
    path.chmod(0o644)
    inode = path.stat().st_ino
    assert update_dotenv(path, {"OPENAI_API_KEY": TOKEN}).tightened_from == 0o644
    assert path.stat().st_ino == inode
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

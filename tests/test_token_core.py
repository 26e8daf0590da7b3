"""The token core against the emulator with the real google-auth: every credential type, the shared cache, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import run_cli

from vertex_env.cli.group import main
from vertex_env.core.cache import TokenCache
from vertex_env.emulator import (
    EmulatorServer,
    write_authorized_user,
    write_external_account,
    write_external_account_authorized_user,
    write_impersonated_service_account,
    write_service_account,
)
from vertex_env.emulator.server import TOKEN_PREFIX
from vertex_env.environment import resolve
from vertex_env.system.files import cache_dir

SA = "target-sa@test-project.iam.gserviceaccount.com"


@pytest.fixture
def emu(bare_emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    """The emulator and the project, no ADC file: each test says where its credential comes from."""
    monkeypatch.setenv("VERTEX_ENV_PROJECT", "test-project")
    return bare_emu


def token_via_cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["token", *args]) == 0, capsys.readouterr().err
    value = capsys.readouterr().out.strip()
    assert value.startswith(TOKEN_PREFIX)
    return value


def accepted(emu: EmulatorServer, token: str) -> bool:
    """The emulator's chat endpoint accepts the token (the test of a working credential)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{emu.chat_base_url()}/chat/completions",
        data=b'{"model":"google/gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}',
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError:
        return False


def gcloud_adc_path(home: Path) -> Path:
    return home / ".config" / "gcloud" / "application_default_credentials.json"


def test_gcloud_login_file_is_found_and_its_token_accepted(
    emu: EmulatorServer, isolated_machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_authorized_user(gcloud_adc_path(isolated_machine))
    token = token_via_cli(capsys)
    assert accepted(emu, token)
    assert emu.state.stats()["original_hosts"].get("oauth2.googleapis.com") == 1


@pytest.mark.parametrize(
    "kind",
    [
        "service_account",
        "external_account",
        "external_account_impersonated",
        "external_account_authorized_user",
        "impersonated_service_account",
    ],
)
def test_every_adc_file_type_yields_an_accepted_token(
    kind: str,
    emu: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / f"{kind}.json"
    if kind == "service_account":
        write_service_account(path, register_with=emu.state)
    elif kind.startswith("external_account_impersonated"):
        subject = tmp_path / "oidc.jwt"
        write_external_account(path, subject_token_file=subject, impersonate=SA)
    elif kind == "external_account":
        write_external_account(path, subject_token_file=tmp_path / "oidc.jwt")
    elif kind == "external_account_authorized_user":
        write_external_account_authorized_user(path)
    else:
        write_impersonated_service_account(path, target=SA)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    token = token_via_cli(capsys)
    assert accepted(emu, token)


def test_impersonation_flag_carries_its_lifetime(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    write_authorized_user(gcloud_adc_path(isolated_machine))
    env = resolve(impersonate=SA, lifetime="10m")
    token = env.token()
    assert 590 <= token.remaining() <= 600
    assert token.principal == SA
    assert accepted(emu, token.value)
    assert emu.state.stats()["requests"]["iam"] == 1


@pytest.mark.slow
def test_metadata_server_in_a_subprocess(emu: EmulatorServer, isolated_machine: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("NO_GCE_CHECK", "VERTEX_ENV_EMULATOR_HOST")
    }
    env.update(
        GCE_METADATA_HOST=emu.host_port,
        GCE_METADATA_IP=emu.host_port,
        VERTEX_ENV_PROJECT="test-project",
    )
    result = run_cli("status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["credential"]["type"] == "compute_engine"
    assert report["values"]["project"] == {
        "value": "test-project",
        "source": "env VERTEX_ENV_PROJECT",
    }
    assert report["credential"]["principal"].endswith(".iam.gserviceaccount.com")
    minted = run_cli("token", env=env)
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    assert accepted(emu, token)
    assert emu.state.stats()["requests"]["metadata"] >= 2
    del env["VERTEX_ENV_PROJECT"]  # the metadata server knows the project when nothing else says
    result = run_cli("status", "--json", env=env)
    assert json.loads(result.stdout)["values"]["project"] == {
        "value": "emulated-project",
        "source": "metadata server",
    }


def test_repeat_calls_are_served_from_the_cache_with_zero_token_requests(
    emu: EmulatorServer, isolated_machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_authorized_user(gcloud_adc_path(isolated_machine))
    first = token_via_cli(capsys)
    issued = emu.state.stats()["tokens_issued"]
    for _ in range(5):
        assert token_via_cli(capsys) == first
    assert emu.state.stats()["tokens_issued"] == issued == 1
    assert token_via_cli(capsys, "--no-cache") != first, "--no-cache bypasses the cache"
    assert main(["cache", "clear"]) == 0
    assert token_via_cli(capsys) != first


def test_cache_files_are_private_and_hold_no_secret_of_the_credential(
    emu: EmulatorServer, isolated_machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    adc = write_authorized_user(gcloud_adc_path(isolated_machine))
    token_via_cli(capsys)
    directory = cache_dir()
    assert directory == isolated_machine / "run" / "vertex-env"
    assert directory.stat().st_mode & 0o777 == 0o700
    files = list(directory.glob("token-*.json"))
    assert len(files) == 1 and files[0].stat().st_mode & 0o777 == 0o600
    refresh_token = json.loads(adc.read_text())["refresh_token"]
    assert refresh_token not in files[0].read_text()


def test_a_new_gcloud_login_is_a_new_cache_key(
    emu: EmulatorServer, isolated_machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_authorized_user(gcloud_adc_path(isolated_machine))
    first = token_via_cli(capsys)
    write_authorized_user(
        gcloud_adc_path(isolated_machine)
    )  # what a fresh `gcloud auth application-default login` does
    assert token_via_cli(capsys) != first


@pytest.mark.parametrize("damage", ["corrupt", "world-readable", "symlink"])
def test_a_damaged_or_untrustworthy_cache_file_is_ignored_and_replaced(
    damage: str, emu: EmulatorServer, isolated_machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_authorized_user(gcloud_adc_path(isolated_machine))
    first = token_via_cli(capsys)
    (path,) = cache_dir().glob("token-*.json")
    if damage == "corrupt":
        path.write_text('{"version": 1, "value": ')
    elif damage == "world-readable":
        path.chmod(0o644)
    else:
        decoy = isolated_machine / "decoy.json"
        decoy.write_text(path.read_text())
        decoy.chmod(0o600)
        path.unlink()
        path.symlink_to(decoy)
    second = token_via_cli(capsys)
    assert second != first
    assert not path.is_symlink() and path.stat().st_mode & 0o777 == 0o600


@pytest.mark.slow
def test_32_concurrent_processes_missing_the_cache_mint_exactly_once(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    write_authorized_user(gcloud_adc_path(isolated_machine))
    emu.admin.fault(
        "token", delay=0.3
    )  # widen the race window: every process misses before the first mint ends
    command = [sys.executable, "-m", "vertex_env", "token"]

    def token(_: int) -> str:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    with ThreadPoolExecutor(max_workers=32) as pool:
        tokens = set(pool.map(token, range(32)))
    assert len(tokens) == 1
    assert emu.state.stats()["tokens_issued"] == 1


def test_threads_in_one_process_share_one_mint(emu: EmulatorServer, isolated_machine: Path) -> None:
    write_authorized_user(gcloud_adc_path(isolated_machine))
    emu.admin.fault("token", delay=0.2)
    env = resolve()
    with ThreadPoolExecutor(max_workers=8) as pool:
        values = {t.value for t in pool.map(lambda _: env.token(), range(16))}
    assert len(values) == 1 and emu.state.stats()["tokens_issued"] == 1


def test_a_token_with_less_than_min_ttl_left_is_replaced(
    emu: EmulatorServer, isolated_machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_authorized_user(gcloud_adc_path(isolated_machine))
    emu.admin.configure(expires_in=1200)
    first = token_via_cli(capsys)
    assert token_via_cli(capsys, "--min-ttl", "10m") == first
    source = resolve().token_source
    entry = source.cached(0)
    assert entry is not None
    # The rule, on an injected clock: served while more than min_ttl is left, never once less is.
    assert source.cached(300, now=entry.expires_at - 301) is not None
    assert source.cached(300, now=entry.expires_at - 299) is None
    # min_ttl is capped at half the token's life, so a short-lived token is still reused rather than re-minted.
    assert source.cached(3000, now=entry.expires_at - 601) is not None
    assert source.cached(3000, now=entry.expires_at - 599) is None
    assert emu.state.stats()["tokens_issued"] == 1


# --- errors: each its own exit code and a message that says what to do; never a traceback or a token ---


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int, *phrases: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr
    assert TOKEN_PREFIX not in result.stderr + result.stdout
    assert "1//" not in result.stderr


def test_no_credentials_anywhere_fails_fast_with_what_was_tried(
    isolated_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_GCE_CHECK")  # the real probe for a metadata server, bounded
    started = time.monotonic()
    result = run_cli("token")
    elapsed = time.monotonic() - started
    assert_clean_error(
        result,
        4,
        "no Google credentials found",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "gcloud auth application-default login",
        "metadata server",
        "run `vertex-env demo` (offline)",  # the way to try it without a Google account
    )
    assert (
        elapsed < 5
    )  # the < 1 s figure is measured by bench/bench_core.py, not asserted on a shared CI machine


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "code", "phrases"),
    [
        (
            {"error": "invalid_rapt"},
            6,
            ("reauthenticate (invalid_rapt)", "gcloud auth application-default login"),
        ),
        (
            {"error": "invalid_grant"},
            7,
            ("revoked or has expired (invalid_grant)", "gcloud auth application-default login"),
        ),
        ({"close": True, "count": 3}, 8, ("could not reach the emulator at",)),
        ({"status": 503, "count": 10}, 8, ("kept failing",)),
        ({"non_json": True}, 8, ("not a token response",)),
    ],
)
def test_refresh_failures_map_to_exit_codes(
    fault: dict[str, object],
    code: int,
    phrases: tuple[str, ...],
    emu: EmulatorServer,
    isolated_machine: Path,
) -> None:
    write_authorized_user(gcloud_adc_path(isolated_machine))
    emu.admin.fault("token", **fault)
    assert_clean_error(run_cli("token", timeout=60), code, *phrases)


def test_a_connection_closed_once_is_retried_by_the_transport(
    emu: EmulatorServer, isolated_machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_authorized_user(gcloud_adc_path(isolated_machine))
    emu.admin.fault("token", close=True, count=1)
    assert accepted(emu, token_via_cli(capsys))


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        ("not json", "not valid JSON"),
        (
            '{"type": "service_account", "client_email": "a@b.iam.gserviceaccount.com"}',
            "service_account credential lacks field 'private_key'",
        ),
        ('{"type": "magic"}', "field 'type' is 'magic'"),
        (
            '{"type": "authorized_user", "client_id": "x", "client_secret": "y"}',
            "lacks field 'refresh_token'",
        ),
    ],
)
def test_malformed_credential_files_name_the_file_and_field(
    content: str, phrase: str, tmp_path: Path
) -> None:
    path = tmp_path / "creds.json"
    path.write_text(content)
    result = run_cli("token", "--credentials", str(path))
    assert_clean_error(result, 5, str(path), phrase)


def test_status_shows_sources_masks_the_token_and_warns_about_quota(
    emu: EmulatorServer, isolated_machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_authorized_user(gcloud_adc_path(isolated_machine))
    token = token_via_cli(capsys)
    assert main(["status", "--location", "global"]) == 0
    out, err = capsys.readouterr()
    assert token not in out and token not in err
    assert "project:       test-project  [env VERTEX_ENV_PROJECT]" in out
    assert "location:      global  [flag --location]" in out
    assert "authorized_user from gcloud application-default login" in out
    assert "expires in" in out and "ya29." in out
    assert "user credentials without a quota project" in err
    assert main(["status", "--json", "--quota-project", "billing-project"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["warnings"] == []
    assert report["token"]["from_cache"] is False  # the quota project is part of the cache key
    assert token not in json.dumps(report)
    assert main(["status", "--json", "--quota-project", "billing-project"]) == 0
    assert json.loads(capsys.readouterr().out)["token"]["from_cache"] is True


def test_cache_key_ignores_nothing_that_changes_the_token(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    write_authorized_user(gcloud_adc_path(isolated_machine))
    keys = {
        resolve().token_source.cache_key,
        resolve(quota_project="billing-project").token_source.cache_key,
        resolve(impersonate=SA).token_source.cache_key,
        resolve(
            scopes="https://www.googleapis.com/auth/cloud-platform,https://www.googleapis.com/auth/userinfo.email"
        ).token_source.cache_key,
    }
    assert len(keys) == 4
    assert resolve(location="global").token_source.cache_key == resolve().token_source.cache_key
    assert TokenCache().directory == cache_dir()


@pytest.mark.slow
def test_waiters_share_the_error_of_a_mint_that_failed_while_they_waited(
    emu: EmulatorServer, isolated_machine: Path
) -> None:
    """N processes behind one failing mint each get its error, instead of each waiting out their own retries."""
    write_authorized_user(gcloud_adc_path(isolated_machine))
    emu.admin.fault(
        "token", close=True, delay=1.0, count=100
    )  # one mint: 3 attempts of about 1 s each

    def export(_: int) -> tuple[int, str]:
        result = run_cli("export", "--format", "json", timeout=60)
        return result.returncode, result.stderr

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(export, range(6)))
    assert [code for code, _ in results] == [8] * 6
    assert emu.state.stats()["requests"]["token"] == 3, "only the first process asked Google"
    shared = [
        err for _, err in results if "another vertex-env process could not get a token" in err
    ]
    assert len(shared) == 5, (
        "the five waiters took the first one's failure instead of their own retries"
    )
    emu.admin.clear_faults()
    assert run_cli("token").returncode == 0, "a later call tries again"


@pytest.mark.slow
def test_an_unusable_cache_directory_warns_and_goes_on_without_it(
    emu: EmulatorServer, isolated_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_authorized_user(gcloud_adc_path(isolated_machine))
    blocker = isolated_machine / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("VERTEX_ENV_CACHE_DIR", str(blocker / "cache"))
    result = run_cli("token")
    assert result.returncode == 0, result.stderr
    assert accepted(emu, result.stdout.strip())
    assert "token cache" in result.stderr and "going on without it" in result.stderr
    assert "Traceback" not in result.stderr

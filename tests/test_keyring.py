"""Long-lived credentials in a real Secret Service (gnome-keyring under dbus-run-session), and no silent fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keyring.errors
import pytest
from conftest import require_tool

from vertex_env.cli.group import main

CREDENTIAL = {
    "type": "authorized_user",
    "client_id": "id.apps.googleusercontent.com",
    "client_secret": "not-a-real-secret",
    "refresh_token": "1//not-a-real-refresh-token",
}


def in_secret_service(script: str, home: Path) -> subprocess.CompletedProcess[str]:
    """Run a shell script inside a fresh D-Bus session with an unlocked gnome-keyring."""
    require_tool("dbus-run-session")
    require_tool("gnome-keyring-daemon")
    wrapper = (
        'eval "$(printf %s test-password | gnome-keyring-daemon --unlock --components=secrets)"\n'
        "export GNOME_KEYRING_CONTROL\n" + script
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBUS_")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return subprocess.run(
        ["dbus-run-session", "--", "bash", "-c", wrapper],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_import_stores_the_file_in_the_secret_service_and_profiles_read_it_back(
    isolated_machine: Path,
) -> None:
    source = isolated_machine / "adc.json"
    source.write_text(json.dumps(CREDENTIAL))
    result = in_secret_service(
        "vertex-env credentials import adc.json --name work --remove-source || exit 1\n"
        "python -c \"from vertex_env.core.keyring_store import load_entry; import sys; sys.stdout.write(load_entry('work').decode())\"\n",
        isolated_machine,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == CREDENTIAL
    assert "stored authorized_user credential" in result.stderr
    assert "1//not-a-real" not in result.stderr
    assert not source.exists(), (
        "--remove-source deletes the plaintext file after a successful import"
    )


def test_import_refuses_a_malformed_file_and_keeps_it(isolated_machine: Path) -> None:
    source = isolated_machine / "broken.json"
    source.write_text('{"type": "service_account"}')
    result = in_secret_service(
        "vertex-env credentials import broken.json --remove-source", isolated_machine
    )
    assert result.returncode == 5
    assert "lacks field 'client_email'" in result.stderr
    assert source.exists()


def test_without_a_secure_backend_it_says_so_and_never_falls_back_to_plaintext(
    isolated_machine: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    source = isolated_machine / "adc.json"
    source.write_text(json.dumps(CREDENTIAL))
    code = main(["credentials", "import", str(source), "--remove-source"])
    err = capsys.readouterr().err
    assert code == 10
    assert "no secure OS keyring backend is available" in err
    assert "Secret Service" in err
    assert source.exists()
    assert not list(isolated_machine.rglob("*.cfg")), "no plaintext keyring file was created"


@pytest.mark.slow
def test_a_profile_using_keyring_credentials_mints_a_token_the_emulator_accepts(
    isolated_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vertex_env.emulator import EmulatorServer, write_authorized_user

    with EmulatorServer() as emu:
        monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", emu.host_port)
        write_authorized_user(isolated_machine / "adc.json")
        result = in_secret_service(
            "vertex-env credentials import adc.json --name work --remove-source || exit 1\n"
            "vertex-env profile set default credentials=keyring:work project=test-project || exit 1\n"
            "vertex-env token\n",
            isolated_machine,
        )
        assert result.returncode == 0, result.stderr
        token = result.stdout.strip()
        assert token.startswith("ya29.emu-")
        assert emu.state.lookup_token(token) is not None
        assert emu.state.stats()["tokens_issued"] == 1


class _LockedKeyring:
    """A keyring that says no as keyring's backends do: with keyring's own errors. Not a subclass of
    keyring.backend.KeyringBackend: those register themselves, and keyring would pick this one for the process."""

    priority = 1

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("collection is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError("refused")

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.PasswordDeleteError("no such entry")


class _BrokenKeyring(_LockedKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise ZeroDivisionError("a bug, not a keyring refusal")


def test_keyring_refusals_become_one_clear_error_and_bugs_stay_bugs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vertex_env.core import keyring_store
    from vertex_env.errors import KeyringUnavailableError

    # keyring_store's one seam to the backend (keyring.get_keyring() would cache it for the whole process)
    monkeypatch.setattr(keyring_store, "_backend", _LockedKeyring)
    with pytest.raises(
        KeyringUnavailableError, match="cannot read keyring entry 'x': KeyringLocked"
    ):
        keyring_store.load_entry("x")
    with pytest.raises(KeyringUnavailableError, match="cannot write keyring entry 'x'"):
        keyring_store.store_entry("x", b"{}")
    assert keyring_store.delete_entry("x") is False
    monkeypatch.setattr(keyring_store, "_backend", _BrokenKeyring)
    with pytest.raises(ZeroDivisionError):
        keyring_store.load_entry("x")

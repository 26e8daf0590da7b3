"""google-auth's own credential fixtures (tests/data/google-auth/, copied with their license): each gives a
token from the emulator, or a documented exit code with one clear line that says why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from vertex_env.cli.group import main
from vertex_env.emulator import EmulatorServer
from vertex_env.emulator.server import TOKEN_PREFIX
from vertex_env.errors import EXIT_CODES

FIXTURES = Path(__file__).parent / "data" / "google-auth"
_NOT_ADC = "no field 'type' (not an Application Default Credentials file"
#: fixture → (exit code, phrase of the error line); 0 = a token the emulator accepts.
EXPECTED: dict[str, tuple[int, str]] = {
    "authorized_user.json": (0, ""),
    "authorized_user_cloud_sdk.json": (0, ""),
    "authorized_user_cloud_sdk_with_quota_project_id.json": (0, ""),
    "authorized_user_with_rapt_token.json": (0, ""),
    "client_secrets.json": (5, _NOT_ADC),
    "context_aware_metadata.json": (5, _NOT_ADC),
    "enterprise_cert_invalid.json": (5, _NOT_ADC),
    "enterprise_cert_valid.json": (5, _NOT_ADC),
    "enterprise_cert_valid_provider.json": (5, _NOT_ADC),
    "es256_service_account.json": (5, "the service account key is an EC private key"),
    "es384_service_account.json": (5, "unsupported credential type 'gdch_service_account'"),
    "external_account_authorized_user.json": (0, ""),
    "external_account_authorized_user_non_gdu.json": (
        5,
        "belongs to the universe 'fake_universe_domain'",
    ),
    "external_subject_token.json": (5, _NOT_ADC),
    "gdch_service_account.json": (5, "unsupported credential type 'gdch_service_account'"),
    "impersonated_service_account_authorized_user_source.json": (0, ""),
    "impersonated_service_account_external_account_authorized_user_source.json": (0, ""),
    "impersonated_service_account_service_account_source.json": (0, ""),
    "impersonated_service_account_with_quota_project.json": (0, ""),
    "service_account.json": (0, ""),
    "service_account_non_gdu.json": (5, "belongs to the universe 'universe.foo'"),
}


def test_every_copied_fixture_has_an_expectation_and_the_license_travels_with_them() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.json")) == sorted(EXPECTED)
    assert "Apache License" in (FIXTURES / "LICENSE").read_text()
    assert "google-auth-library-python" in (FIXTURES / "README.md").read_text()


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer() as running:
        yield running


def _register_service_account_keys(server: EmulatorServer, info: dict[str, object]) -> None:
    """The emulator verifies assertion signatures against registered keys, as Google does with a key's
    public half: register the fixture's, derived from its private key."""
    from cryptography.hazmat.primitives import serialization

    for doc in (info, info.get("source_credentials")):
        if not isinstance(doc, dict) or doc.get("type") != "service_account":
            continue
        key = serialization.load_pem_private_key(str(doc["private_key"]).encode(), password=None)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        server.state.register_key(
            str(doc["client_email"]), public, str(doc.get("private_key_id") or "")
        )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_google_auth_fixture_gives_a_token_or_a_documented_exit_code(
    name: str,
    server: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server.state.reset()
    monkeypatch.setenv("VERTEX_ENV_EMULATOR_HOST", server.host_port)
    monkeypatch.setenv("VERTEX_ENV_PROJECT", "test-project")
    path = FIXTURES / name
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    code, phrase = EXPECTED[name]
    info = json.loads(path.read_text())
    if code == 0:
        _register_service_account_keys(server, info)
    assert main(["token", "--no-cache"]) == code
    out, err = capsys.readouterr()
    if code == 0:
        assert out.strip().startswith(TOKEN_PREFIX), (out, err)
        assert err == ""
        return
    assert code in EXIT_CODES
    assert out == ""
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("vertex-env: error: ") and phrase in line, line
    assert str(path) in line  # names the file it could not use
    for secret in ("alabalaportocala", "clientSecret", "PRIVATE KEY", "refreshToken"):
        assert secret not in line
    assert server.state.stats()["requests"].get("token", 0) == 0  # refused before asking anyone

"""shell/compose/compose.yaml, the recipe people copy (issue 19, part 5): an app and a vertex-env service built
from the sidecar image, `serve --listen 0.0.0.0 --allow-host vertex-env`, the key from a compose secret, ADC
mounted read-only. There is no Docker engine here: the file is parsed, and what it tells each container is
checked against what vertex-env and the image accept."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from docker.utils.build import PatternMatcher

from vertex_env.cli.commands.serve import serve
from vertex_env.cli.group import cli
from vertex_env.config.options import ALL_OPTIONS
from vertex_env.config.values import validate_existing_file

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "shell" / "compose" / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def bridge(compose: dict[str, Any]) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"]["vertex-env"]
    return service


def app(compose: dict[str, Any]) -> dict[str, Any]:
    others: list[dict[str, Any]] = [
        s for name, s in compose["services"].items() if name != "vertex-env"
    ]
    assert len(others) == 1
    return others[0]


def option(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_the_serve_arguments_are_options_serve_accepts(compose: dict[str, Any]) -> None:
    args = [str(a) for a in bridge(compose)["command"]]
    help_text = CliRunner().invoke(cli, ["serve", "--help"]).output
    for flag in (a for a in args if a.startswith("--")):
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text), flag
    # and click parses them as `vertex-env serve` would (types, values, no stray argument)
    context = serve.make_context("serve", list(args))
    assert context.params["listen_host"] == "0.0.0.0"
    assert context.params["allow_hosts"] == ("vertex-env",)
    assert context.params["key_file"] == "/run/secrets/vertex_env_key"
    # each value passes the option table's own check, as `serve` runs it
    by_flag = {flag: opt for opt in ALL_OPTIONS for flag in (opt.flag, *opt.aliases)}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if by_flag[flag].validate is validate_existing_file:
            assert value.startswith("/run/secrets/")  # exists in the container, from the secret
            continue
        by_flag[flag].validate(value)


def test_the_bridge_listens_beyond_loopback_only_with_a_key_from_a_secret(
    compose: dict[str, Any],
) -> None:
    service = bridge(compose)
    args = [str(a) for a in service["command"]]
    secret = option(args, "--key-file")
    assert secret.startswith("/run/secrets/")
    name = secret.rsplit("/", 1)[1]
    assert name in service["secrets"] and name in app(compose)["secrets"]
    source = compose["secrets"][name]["file"]
    # the key file is never sent to a build: the image's .dockerignore refuses it
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    in_repo = (COMPOSE.parent / source).resolve().relative_to(REPO)
    assert PatternMatcher(ignored).matches(str(in_repo))
    # never the key's value in the file, nor VERTEX_ENV_PROXY_KEY in any environment
    for each in compose["services"].values():
        assert "VERTEX_ENV_PROXY_KEY" not in each.get("environment", {})
        assert "OPENAI_API_KEY" not in each.get("environment", {})


def test_the_bridge_is_built_from_the_sidecar_image_and_reads_adc_read_only(
    compose: dict[str, Any],
) -> None:
    service = bridge(compose)
    context = (COMPOSE.parent / service["build"]["context"]).resolve()
    assert context == REPO
    assert (
        context / service["build"]["dockerfile"]
    ) == REPO / "shell" / "kubernetes" / "Dockerfile"
    adc = service["environment"]["GOOGLE_APPLICATION_CREDENTIALS"]
    mounts = [v.rsplit(":", 2) for v in service["volumes"]]
    assert [(target, mode) for _, target, mode in mounts] == [(adc, "ro")]
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    # the app starts once the image's HEALTHCHECK (/healthz on the ops port) passes
    assert app(compose)["depends_on"]["vertex-env"]["condition"] == "service_healthy"
    args = [str(a) for a in service["command"]]
    dockerfile = (REPO / "shell" / "kubernetes" / "Dockerfile").read_text()
    port = option(args, "--ops-listen").rsplit(":", 1)[1]
    assert f"'127.0.0.1', {port}" in dockerfile  # what its HEALTHCHECK asks


def test_the_app_uses_the_allowed_name_the_port_and_the_base_path_serve_prints(
    compose: dict[str, Any],
) -> None:
    args = [str(a) for a in bridge(compose)["command"]]
    url = app(compose)["environment"]["OPENAI_API_BASE_URL"]
    found = re.fullmatch(
        r"http://(?P<host>[^:/]+):(?P<port>\d+)/v1/projects/\$\{GOOGLE_CLOUD_PROJECT\}"
        r"/locations/\$\{GOOGLE_CLOUD_LOCATION:-global\}/endpoints/openapi",
        url,
    )
    assert found, url
    assert found["host"] == option(args, "--allow-host")
    assert found["port"] == option(args, "--port")
    # the app's key is read from the secret at start
    entrypoint = " ".join(app(compose)["entrypoint"])
    assert "OPENAI_API_KEY=" in entrypoint and "/run/secrets/vertex_env_key" in entrypoint

"""`vertex-env profile` and `cache` commands as a user runs them: what they store and what they show."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vertex_env import config
from vertex_env.cli import main


def test_profile_set_stores_relative_write_paths_as_absolute_ones(
    isolated_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = isolated_machine / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    assert main(["profile", "set", "dev", "write=.env,sub/../b.env,~/c.env,/abs/d.env"]) == 0
    stored = config.read_config(config.config_path())["profiles"]["dev"]["write"]
    assert stored == [str(project / ".env"), str(project / "b.env"), "~/c.env", "/abs/d.env"]
    os.chdir("/")
    profile = config.profile_from({"profile": "dev"}, dict(os.environ))
    assert profile.write[0] == str(project / ".env")

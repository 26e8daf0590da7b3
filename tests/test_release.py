"""Release readiness: the metadata a package page shows, the sdist and wheel as PyPI would receive them, the release
workflow, the CHANGELOG entry and tox's environments.

The build runs here, offline, from a copy of the checkout (with build and setuptools of the test extra, no isolated
environment to download), and twine checks its output with --strict as the release workflow does.
"""

from __future__ import annotations

import configparser
import email.parser
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import trove_classifiers
import yaml

from vertex_env import __version__

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT: dict[str, Any] = PYPROJECT["project"]
RELEASE = REPO / ".github" / "workflows" / "release.yml"


# -- metadata -----------------------------------------------------------------------------------------------------


def test_every_classifier_is_one_pypi_knows() -> None:
    unknown = [c for c in PROJECT["classifiers"] if c not in trove_classifiers.classifiers]
    assert unknown == []


def test_the_classifiers_say_posix_and_the_pythons_requires_python_admits() -> None:
    classifiers = set(PROJECT["classifiers"])
    assert "Operating System :: POSIX" in classifiers
    assert not [c for c in classifiers if "Windows" in c]
    lowest = re.fullmatch(r">=3\.(\d+)", PROJECT["requires-python"])
    assert lowest is not None
    claimed = sorted(
        int(m[1])
        for c in classifiers
        if (m := re.fullmatch(r"Programming Language :: Python :: 3\.(\d+)", c))
    )
    assert claimed[0] == int(lowest[1])
    assert claimed == list(range(claimed[0], claimed[-1] + 1))  # no gap
    # tox tests the lowest and the highest of them, and .ci/run runs both.
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(REPO / "tox.ini")
    envs = {e.strip() for e in tox["tox"]["envlist"].split(",")}
    wanted = {f"py3{claimed[0]}", f"py3{claimed[-1]}"}
    assert wanted <= envs
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"tox run -e " + ",".join(sorted(wanted)), ci)
    # PEP 639: an SPDX `license` excludes License classifiers.
    assert not [c for c in classifiers if c.startswith("License ::")]


def test_the_project_urls_and_keywords_are_set() -> None:
    urls = PROJECT["urls"]
    assert set(urls) >= {"Repository", "Issues", "Changelog"}
    assert all(u.startswith("https://") for u in urls.values())
    assert PROJECT["keywords"]


def test_the_changelog_opens_with_this_version() -> None:
    first = re.search(r"^## (\S+)", (REPO / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert first is not None and first[1] == __version__


def test_no_tox_description_is_read_as_a_factor_condition() -> None:
    """tox reads a value line `word: text` as "only in environments with the factor `word`": a description like
    `benchmarks: ...` made a phantom environment `benchmarks` and left `bench` with the default description."""
    factor_line = re.compile(r"^\s*!?[\w.-]+(?:,!?[\w.-]+)*:\s")
    config = configparser.ConfigParser(interpolation=None)
    config.read(REPO / "tox.ini")
    conditional = [
        f"[{section}] {key}"
        for section in config.sections()
        for key, value in config[section].items()
        if any(factor_line.match(line) for line in value.splitlines() if line.strip())
    ]
    assert conditional == []


# -- the release workflow ------------------------------------------------------------------------------------------


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job["steps"]  # type: ignore[no-any-return]


def test_the_release_workflow_builds_checks_and_publishes_with_trusted_publishing() -> None:
    workflow = yaml.safe_load(RELEASE.read_text())
    trigger = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as true
    assert trigger["push"]["tags"] == ["v*"]
    assert workflow["permissions"] == {"contents": "read"}
    build, publish = workflow["jobs"]["build"], workflow["jobs"]["publish"]
    commands = "\n".join(step.get("run", "") for step in _steps(build))
    assert "python -m build" in commands
    assert "twine check --strict dist/*" in commands
    assert 'test "$GITHUB_REF_NAME" = "v$version"' in commands
    assert publish["needs"] == "build"
    assert publish["permissions"] == {"id-token": "write"}
    assert publish["environment"]["name"] == "pypi"
    (upload,) = [s for s in _steps(publish) if s["uses"].startswith("pypa/gh-action-pypi-publish@")]
    assert "password" not in upload.get("with", {})  # trusted publishing: no token
    for job in workflow["jobs"].values():
        for step in _steps(job):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]


@pytest.mark.slow
@pytest.mark.timeout(600)  # a pip install and a build: minutes on a loaded 2-core machine
def test_the_sdist_and_wheel_pass_twine_check_strict_and_carry_what_the_tests_need(
    tmp_path: Path,
) -> None:
    source = tmp_path / "checkout"
    shutil.copytree(
        REPO,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".tox", "*.egg-info", "build", "dist", "__pycache__"
        ),
    )
    # A working folder after `serve --write-env proxy.env` in shell/kubernetes/ and `write .env` at the top.
    (source / "shell" / "kubernetes" / "proxy.env").write_text("OPENAI_API_KEY='planted'\n")
    (source / ".env").write_text("OPENAI_API_KEY='planted'\n")
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    with tarfile.open(sdist) as tar:
        in_sdist = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert {
        ".ci/run",
        ".dockerignore",
        "tests/conftest.py",
        "shell/kubernetes/Dockerfile",
        "mkdocs.yml",  # the docs pages' tests read the nav and every page
        "docs/index.md",
        "docs/check.md",
    } <= in_sdist
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
        (metadata_name,) = [n for n in in_wheel if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(archive.read(metadata_name).decode())
    assert "vertex_env/shell/kubernetes/sidecar.yaml" in in_wheel
    for names in (in_sdist, in_wheel):
        assert not [n for n in names if n.endswith(".env")]
    assert "Operating System :: POSIX" in (metadata.get_all("Classifier") or [])
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert urls["Repository"] == PROJECT["urls"]["Repository"]
    assert metadata["Version"] == __version__

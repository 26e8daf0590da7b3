"""The documentation a newcomer walks: a README of a few screens that reaches the offline tour early and links with
absolute URLs (it is also the package's long description), and an mkdocs site whose nav lists every page of docs/.

The blocks of both run in tests/test_readme_shell.py and tests/test_readme_examples.py."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vertex_env.errors import EXIT_CODES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = sorted(path.name for path in DOCS.glob("*.md"))
_LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def _repository() -> str:
    urls = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]
    return str(urls["Repository"]).rstrip("/")


def _nav_pages(nav: object) -> list[str]:
    """Every page a mkdocs nav names, in order (entries are 'page.md', {title: 'page.md'} or {title: [...]})."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for entry in nav for page in _nav_pages(entry)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    raise AssertionError(f"unexpected nav entry {nav!r}")


def _slug(heading: str) -> str:
    """The anchor GitHub and mkdocs' toc give a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(
        r"^```.*?^```", "", text, flags=re.S | re.M
    )  # a `# comment` in a block is no heading
    return {_slug(m[1]) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def test_the_nav_lists_every_page_once_and_no_other() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = _nav_pages(config["nav"])
    assert len(listed) == len(set(listed)), f"a page listed twice: {listed}"
    assert sorted(listed) == PAGES


def test_the_docs_have_a_page_per_topic() -> None:
    topics = {
        "shells.md", "direnv.md", "daemon.md", "run.md", "serve.md", "ci.md", "python.md", "configuration.md",
        "check.md", "exit-codes.md", "security.md", "emulator.md", "hacking.md",
    }  # fmt: skip
    assert topics <= set(PAGES)


def test_the_readme_fits_a_few_screens_and_reaches_the_offline_tour_early() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    tour = next(i for i, line in enumerate(lines, 1) if re.match(r"## .*tour", line, re.I))
    assert tour <= 60, f"the offline tour starts at line {tour}"
    block = "\n".join(lines[tour:])
    block = block[block.index("```sh") : block.index("```\n", block.index("```sh") + 5)]
    assert "vertex-env emulator --port 0" in block, (
        "the tour runs on the emulator, on a port it picks"
    )
    assert "mktemp -d" in block, "in a private folder"
    assert "cat > app.py" in block, "the tour shows the app it runs"


def test_the_readme_links_absolutely_to_files_that_exist() -> None:
    """On a package page a relative link breaks; a link into this repository names a file (and a heading) it has."""
    text = README.read_text(encoding="utf-8")
    targets = [m["target"] for m in _LINK.finditer(text)]
    assert len(targets) >= 10
    relative = [t for t in targets if not t.startswith("https://")]
    assert relative == []
    repo = _repository()
    for target in targets:
        if not target.startswith(repo + "/"):
            continue
        path, _, anchor = target.removeprefix(repo + "/").partition("#")
        path = re.sub(r"^(blob|tree)/main/", "", path)
        assert (REPO / path).exists(), f"{target}: no {path} in this repository"
        if anchor:
            assert anchor in _anchors(REPO / path), f"{target}: no heading #{anchor} in {path}"
    linked = {t.removeprefix(f"{repo}/blob/main/docs/").partition("#")[0] for t in targets}
    missing = sorted(set(PAGES) - {"index.md"} - linked)
    assert missing == [], f"the README links to every docs page: {missing}"


def test_the_readme_install_lines_name_the_repository_of_the_metadata() -> None:
    text = README.read_text(encoding="utf-8")
    installs = re.findall(r"(?:pipx|uv tool|pip) install [^\n#]*git\+(https://\S+?)['\s]", text)
    assert installs, "an install line that works before the package is published"
    assert {url.rstrip("/") for url in installs} == {_repository()}


def test_the_docs_links_between_pages_name_pages_and_headings_that_exist() -> None:
    for page in PAGES:
        for match in _LINK.finditer((DOCS / page).read_text(encoding="utf-8")):
            target = match["target"]
            if target.startswith(("https://", "http://")):
                continue
            path, _, anchor = target.partition("#")
            goal = DOCS / path if path else DOCS / page
            assert goal.exists() and goal.parent == DOCS, f"{page}: {target} is no page of docs/"
            if anchor:
                assert anchor in _anchors(goal), f"{page}: no heading #{anchor} in {goal.name}"


def test_the_exit_codes_page_lists_every_exit_code() -> None:
    text = (DOCS / "exit-codes.md").read_text(encoding="utf-8")
    rows = {
        int(code)
        for first in re.findall(r"^\| ([\d /]+) \|", text, re.M)
        for code in first.split("/")
        if code.strip()
    }
    assert rows == set(EXIT_CODES)


@pytest.mark.slow
def test_mkdocs_builds_the_site_strictly(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip(
            "mkdocs is not installed (pip install -e '.[docs]'); .ci/run builds the site itself"
        )
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr
    for page in PAGES:
        built = "index.html" if page == "index.md" else f"{page.removesuffix('.md')}/index.html"
        assert (tmp_path / "site" / built).is_file(), f"{page} was not built"

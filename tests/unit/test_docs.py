"""The documentation: the MkDocs site builds in strict mode, every page under docs/ is in its nav, and README.md
(the front door, outside the site, so MkDocs does not check it) links only to files and headings that exist."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCS = REPO / "docs"
LINK = re.compile(r"!?\[(?:[^\]`]|`[^`]*`)*\]\(([^)\s]+)\)")


def _nav_pages(nav: list) -> list[str]:
    out = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        out += _nav_pages(value) if isinstance(value, list) else [value]
    return out


def _prose(text: str) -> str:
    """``text`` without its fenced code blocks (a link there is an example, not a link)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def _slug(heading: str) -> str:
    """The anchor Python-Markdown's toc extension (MkDocs) gives a heading; GitHub's agrees for plain headings."""
    text = re.sub(r"[`*]", "", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", _prose(page.read_text(encoding="utf-8")), re.M)}


def test_mkdocs_builds_in_strict_mode(tmp_path):
    """mkdocs.yml turns every link, anchor and nav problem into a warning and strict mode fails on any warning."""
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed: pip install -e '.[dev]' (the dev extra pins it)")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml")]
        + ["--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_every_docs_page_is_in_the_nav():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs" and config["strict"] is True
    nav = _nav_pages(config["nav"])
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(nav) == pages, "every page under docs/ is listed once in mkdocs.yml's nav, and only those"
    assert len(nav) == len(set(nav))


def test_readme_links_resolve():
    """Every relative link and image of README.md names a file of the repository, and a heading of it where it
    has an anchor; the README stays short and links every docs page."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    targets = [t for t in LINK.findall(_prose(text)) if not re.match(r"[a-z]+:", t)]
    assert targets, "no links found: the pattern is wrong"
    for target in targets:
        path, _, anchor = target.partition("#")
        file = (REPO / path) if path else REPO / "README.md"
        assert file.exists(), f"README.md links {target!r}, but {file.relative_to(REPO)} does not exist"
        if anchor:
            assert anchor in _anchors(file), f"README.md links {target!r}, but {path} has no such heading"
    linked = {Path(t.partition("#")[0]).as_posix() for t in targets}
    missing = sorted(
        p.relative_to(REPO).as_posix() for p in DOCS.rglob("*.md") if p.relative_to(REPO).as_posix() not in linked
    )
    assert not missing, f"README.md does not link these docs pages: {missing}"
    assert text.count("\n") <= 250, "the README is the front door: at most about 250 lines, the rest goes to docs/"


def test_slug_matches_mkdocs():
    """_slug gives every heading of the docs the anchor MkDocs' Markdown gives it."""
    toc = pytest.importorskip("markdown.extensions.toc", reason="markdown (an mkdocs dependency) is not installed")
    assert _slug("Model lifecycle (TensorFlow, `training/`)") == "model-lifecycle-tensorflow-training"
    for page in [REPO / "README.md", *DOCS.rglob("*.md")]:
        for m in re.finditer(r"^#+ (.+)$", _prose(page.read_text(encoding="utf-8")), re.M):
            assert _slug(m.group(1)) == toc.slugify(re.sub(r"[`*]", "", m.group(1)), "-"), m.group(1)

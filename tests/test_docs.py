"""The README stays a front page, and every link in it and in docs/ lands inside the repository (or upstream)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_is_a_front_page() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "../shared" not in text and "PENDING" not in text and "RESULTS_TABLE" not in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_land_in_the_repository(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://")):
            continue  # public upstream pages
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.is_relative_to(ROOT) and resolved.exists(), f"{page.name}: {target}"
        if anchor:  # GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens
            headings = re.findall(r"^#+ (.+)$", resolved.read_text(), re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{page.name}: {target}"

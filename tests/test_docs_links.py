"""Every relative link of the repository's Markdown, and every runbook URL of the alert rules, resolves.

A link is `[text](target)` outside fenced code; `target` is a file relative to the page (checked to
exist) with an optional `#anchor`, which must be the GitHub slug of a heading of the target page. The
alert rules point at the runbook by URL (`.../blob/main/deploy/runbook.md#alert`): the path and the
anchor are checked the same way against the repository.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^()\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
_BLOB_URL = re.compile(r"/blob/main/(?P<path>[\w./-]+\.md)#(?P<anchor>[\w-]+)")


def tracked(*patterns: str) -> list[Path]:
    """The repository's files matching the git pathspecs (untracked scratch files are not documentation)."""
    listed = subprocess.run(["git", "ls-files", "--", *patterns], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    return sorted(REPO / name for name in listed)


def prose_lines(page: Path) -> list[str]:
    """The page's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    """Every heading anchor of a page, repeated titles numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(page):
        match = _HEADING.match(line)
        if match is None:
            continue
        base = slug(match["title"])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def problem(page: Path, target: str) -> str | None:
    """Why a relative link of `page` does not resolve, or None when it does."""
    path_part, _, anchor = target.partition("#")
    destination = (page.parent / path_part).resolve() if path_part else page
    where = f"{page.relative_to(REPO)}: {target}"
    if not destination.exists():
        return f"{where}: no file {path_part}"
    if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
        return f"{where}: {destination.relative_to(REPO)} has no heading with anchor #{anchor}"
    return None


def broken_links(page: Path) -> list[str]:
    """The relative links of a Markdown page that do not resolve."""
    problems = []
    for line in prose_lines(page):
        for match in _LINK.finditer(line):
            target = match["target"]
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            found = problem(page, target)
            if found is not None:
                problems.append(found)
    return problems


@pytest.mark.parametrize("page", tracked("*.md"), ids=lambda page: str(page.relative_to(REPO)))
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_runbook_urls_of_the_rules_resolve() -> None:
    urls = [(rule_file, match) for rule_file in tracked("deploy/*.yaml", "deploy/*.json")
            for match in _BLOB_URL.finditer(rule_file.read_text(encoding="utf-8"))]
    assert urls, "no runbook URL found in deploy/"
    problems = {f"{rule_file.relative_to(REPO)}: {match[0]}: "
                f"{'no file' if not (REPO / match['path']).exists() else 'no such heading'}"
                for rule_file, match in urls
                if not (REPO / match["path"]).exists() or match["anchor"] not in anchors(REPO / match["path"])}
    assert sorted(problems) == []


def test_a_missing_anchor_is_found(tmp_path: Path) -> None:
    """The checker itself: a link to a heading that is not there is reported, one that is there is not."""
    page = REPO / "docs" / "metrics.md"
    assert problem(page, "#metric-reference") is None
    assert problem(page, "operations.md#troubleshooting") is None
    assert "no heading" in (problem(page, "#no-such-section") or "")
    assert "no file" in (problem(page, "no-such-page.md") or "")

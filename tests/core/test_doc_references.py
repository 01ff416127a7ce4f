"""The rule pages name the code and tests that hold each rule; a name that no longer exists sends a
reader (or a reviewer checking a number) nowhere. These pages' references must resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The pages that state the rules (one place per rule); the other pages link to them.
RULE_PAGES = ("semantics.md", "metrics.md", "data-sources.md", "timeline.md", "backfill.md")
# `tests/x.py`, `exporter/x/y.py`, `adapters/x.py` (semantics.md shortens exporter/ away)
PATH = re.compile(r"`((?:exporter|tests|bench|scripts|etc|adapters|reconstruct|engine)/[A-Za-z0-9_./-]+\.(?:py|yaml))`")
# `adapters/x.py` (`name`, `other`): the names must be defined in that file
NAMED = re.compile(r"`((?:exporter/)?[a-z_]+/[a-z_/]+\.py)` \(([^()]*)\)")


def _resolve(reference: str) -> Path | None:
    for candidate in (ROOT / reference, ROOT / "exporter" / reference):
        if candidate.exists():
            return candidate
    return None


@pytest.mark.parametrize("page", RULE_PAGES)
def test_every_file_a_rule_page_names_exists(page):
    text = (ROOT / "docs" / page).read_text()
    missing = sorted({ref for ref in PATH.findall(text) if _resolve(ref) is None})
    assert missing == []


@pytest.mark.parametrize("page", RULE_PAGES)
def test_every_function_a_rule_page_names_is_in_its_file(page):
    text = (ROOT / "docs" / page).read_text()
    absent = []
    for reference, names in NAMED.findall(text):
        source = _resolve(reference)
        if source is None:
            continue  # reported by the test above
        code = source.read_text()
        for name in re.findall(r"`([A-Za-z_][A-Za-z0-9_.]*)`", names):
            if not re.search(rf"\b{re.escape(name.split('.')[-1])}\b", code):
                absent.append(f"{reference}: {name}")
    assert absent == []

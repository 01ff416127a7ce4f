"""The pages name the code and tests that hold each rule; a name that no longer exists sends a
reader (or a reviewer checking a number) nowhere. Every page's references must resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Every page a reader follows a reference from: the rule pages and the ones that link to them.
PAGES = tuple(sorted(f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md"))) + ("README.md",)
# `tests/x.py`, `exporter/x/y.py`, `adapters/x.py` (semantics.md shortens exporter/ away), also `….py::test_name`
PATH = re.compile(r"`((?:exporter|tests|bench|scripts|etc|adapters|reconstruct|engine)/[A-Za-z0-9_./-]+\.(?:py|yaml))"
                  r"(?:::[A-Za-z0-9_]+)?`")
# `adapters/x.py` (`name`, `other`): the names must be defined in that file
NAMED = re.compile(r"`((?:exporter/)?[a-z_]+/[a-z_/]+\.py)` \(([^()]*)\)")
# `tests/x/test_y.py::test_name`: the test must be in that file
TEST_NAMED = re.compile(r"`((?:tests|bench)/[A-Za-z0-9_./-]+\.py)::([A-Za-z_][A-Za-z0-9_]*)`")
# `exporter.x.y.name` (or `engine.x.name`, shortened like the paths): a module, then a name in it
DOTTED = re.compile(r"`((?:exporter|engine|reconstruct|adapters)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _resolve(reference: str) -> Path | None:
    for candidate in (ROOT / reference, ROOT / "exporter" / reference):
        if candidate.exists():
            return candidate
    return None


def _defines(source: Path, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", source.read_text()) is not None


def _dotted_resolves(reference: str) -> bool:
    """The longest prefix that is a module must exist, and the next part (if any) be named in it."""
    parts = reference.split(".")
    if parts[0] != "exporter":
        parts = ["exporter", *parts]
    for split in range(len(parts), 1, -1):
        base = ROOT.joinpath(*parts[:split])
        for module in (base.with_suffix(".py"), base / "__init__.py"):
            if module.exists():
                return split == len(parts) or _defines(module, parts[split])
    return False


@pytest.mark.parametrize("page", PAGES)
def test_every_file_a_page_names_exists(page):
    text = (ROOT / page).read_text()
    missing = sorted({ref for ref in PATH.findall(text) if _resolve(ref) is None})
    assert missing == []


@pytest.mark.parametrize("page", PAGES)
def test_every_function_a_page_names_is_in_its_file(page):
    text = (ROOT / page).read_text()
    named = [(reference, name) for reference, names in NAMED.findall(text)
             for name in re.findall(r"`([A-Za-z_][A-Za-z0-9_.]*)`", names)]
    named += TEST_NAMED.findall(text)
    absent = []
    for reference, name in named:
        source = _resolve(reference)
        if source is not None and not _defines(source, name.split(".")[-1]):  # no file: reported above
            absent.append(f"{reference}: {name}")
    assert absent == []


@pytest.mark.parametrize("page", PAGES)
def test_every_dotted_name_a_page_names_resolves(page):
    text = (ROOT / page).read_text()
    unresolved = sorted({ref for ref in DOTTED.findall(text) if not _dotted_resolves(ref)})
    assert unresolved == []

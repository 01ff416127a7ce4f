"""docs/data-sources.md documents every declared table and column (the list extract reads)."""

from __future__ import annotations

import re
from pathlib import Path

from exporter.adapters.registry import declared_tables

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-sources.md"


def test_every_declared_table_and_column_is_documented():
    text = DOC.read_text()
    mentioned = set(re.findall(r"`([A-Za-z0-9_.]+)`", text))
    missing_tables = [s.name for s in declared_tables() if s.name not in mentioned]
    assert missing_tables == [], "add these tables to docs/data-sources.md"
    missing_columns = sorted({f"{s.name}.{c}" for s in declared_tables() for c in s.columns if c not in mentioned})
    assert missing_columns == [], "describe these columns in docs/data-sources.md"

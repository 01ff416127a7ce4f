"""Every time column an adapter reads is either a recorded time (it can date the snapshot when no
manifest does: exporter.layout.RECORDED_TIMES) or a plan (layout.PLANNED_TIMES, which must not):
a new WHEN column the layout does not know would silently never date a snapshot."""

from __future__ import annotations

import ast
from pathlib import Path

from exporter import layout
from exporter.adapters import common

ADAPTERS = Path(common.__file__).parent


def _when_columns() -> set[str]:
    """The names declared ``"name": common.WHEN`` in the adapters' column dicts."""
    names = set()
    for path in ADAPTERS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict):
                names |= {key.value for key, value in zip(node.keys, node.values)
                          if isinstance(key, ast.Constant) and isinstance(value, ast.Attribute)
                          and value.attr == "WHEN"}
    return names


def test_every_time_column_the_adapters_read_is_recorded_or_planned():
    when = _when_columns()
    assert {"created_at", "start_date", "audit_event_time"} <= when  # the scan finds the declarations
    assert when - layout.RECORDED_TIMES - layout.PLANNED_TIMES == set()
    assert layout.RECORDED_TIMES & layout.PLANNED_TIMES == set()

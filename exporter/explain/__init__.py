"""Explain any number: from a timeline cell (or the live gauge) back to the database rows.

The design's debugging procedure as one call: the series and time -> the leaf formula in levels
(read off the leaf table, ``formula``) -> the spans of those levels that cover the window and
what each adds (the timeline's own arithmetic, ``cell``) -> the ledger deltas inside it ->
anomalies by kind (``anomalies``). ``history`` reads a reconstruct output lazily; ``present``
takes the spans the live exporter kept. Both return the same dict (``answer``), documented in
docs/explain.md; ``render`` prints it as a short table.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl

from exporter import layout
from exporter.errors import TimelineError
from exporter.explain.answer import DEVICES, Selection, answer, family_of
from exporter.explain.cell import instant, overlapping
from exporter.explain.history import explain_cell, grid_of
from exporter.explain.render import render_table

__all__ = ["DEVICES", "Selection", "answer", "explain_output", "explain_present", "grid_of", "history_grid", "instant",
           "overlapping", "render_table"]


def _outputs(out: str | Path) -> tuple[Path, dict]:
    """The output directory (``out`` or ``run``'s ``out/timeline``) and its audit.json."""
    out = Path(out)
    nested = out / layout.TIMELINE_DIR
    directory = nested if not (out / layout.TIMELINE_FILE).exists() and (nested / layout.TIMELINE_FILE).exists() \
        else out
    path = directory / layout.AUDIT_FILE
    try:
        return directory, json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise TimelineError(f"cannot read {path} (is it a `usage-exporter reconstruct` output?): "
                            f"{str(err).splitlines()[0][:200]}") from None


def history_grid(out: str | Path):
    """The timeline grid (exporter.explain.history.Grid) of reconstruct output ``out``."""
    return grid_of(_outputs(out)[1])


def explain_output(out: str | Path, at: dt.datetime, selection: Selection, *, limit: int | None = None,
                   offset: int = 0) -> dict:
    """The answer for the cell of ``out``'s timeline holding ``at`` (TimelineError outside it)."""
    directory, audit = _outputs(out)
    return explain_cell(directory, audit, at, selection, limit=limit, offset=offset)


def explain_present(site: str, at: dt.datetime, spans: pl.DataFrame, gauges: pl.DataFrame, selection: Selection,
                    *, requested: dt.datetime | None, limit: int | None = None, offset: int = 0) -> dict:
    """The answer for the live gauge at ``at``: ``spans`` are the spans the exporter computed
    (null end = still open), ``gauges`` its leaf values (node_type, pool, state, resource, value);
    for ``resource="devices"`` the device spans and the devices family's leaves (node_type =
    machine_name, resource nodes), as ``explain_output`` reads them from a reconstruct output."""
    window = instant(at)
    selection, family = family_of(selection)
    result = answer(overlapping(spans.lazy(), window).collect(), gauges, selection=selection, window=window,
                    limit=limit, offset=offset)
    return {"source": "live", "site": site, **family,
            "requested_at": None if requested is None else requested.isoformat(),
            "at": at.isoformat(),
            "note": "value is the live gauge at `at` (the value now), not an hourly mean; each span's "
                    "fraction is 1 (it holds at `at`)",
            **result}

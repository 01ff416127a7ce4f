"""Writing report tables: parquet + CSV (every column) and Markdown (the columns a person reads),
byte-identical for the same table (fixed parquet settings, sorted rows, fixed number format)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from exporter.publish import write_text_atomically
from exporter.reconstruct.outputs import write_frame


def write_text(path: Path, text: str) -> None:
    write_text_atomically(path, text)


def write_table(table: pl.DataFrame, out_dir: Path, stem: str, *, markdown_columns: list[str] | None = None,
                title: str = "", when_empty: str = "") -> list[Path]:
    """``<stem>.parquet``, ``<stem>.csv`` and, with ``markdown_columns``, ``<stem>.md`` (no rows:
    the line ``when_empty``, when given, see :func:`markdown`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.parquet", out_dir / f"{stem}.csv"]
    write_frame(table, paths[0])
    write_text(paths[1], table.write_csv(float_precision=6))
    if markdown_columns is not None:
        paths.append(out_dir / f"{stem}.md")
        write_text(paths[2], markdown(table.select(markdown_columns), title=title, when_empty=when_empty))
    return paths


def markdown(table: pl.DataFrame, *, title: str = "", when_empty: str = "") -> str:
    """A GitHub Markdown table; floats with one decimal (ratios as percentages when named so).
    No rows and a ``when_empty`` line: that line instead of a header over nothing."""
    lines = [f"# {title}", ""] if title else []
    if table.is_empty() and when_empty:
        return "\n".join([*lines, when_empty]) + "\n"
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---:" if table[name].dtype.is_numeric() else "---" for name in table.columns) + "|"
    lines += [header, rule]
    for row in table.iter_rows(named=True):
        lines.append("| " + " | ".join(_cell(name, value) for name, value in row.items()) + " |")
    return "\n".join(lines) + "\n"


def _cell(name: str, value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if name.endswith(("utilization", "_share", "relative_difference")):
            return f"{value * 100:.1f} %"
        return f"{value:,.1f}"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)

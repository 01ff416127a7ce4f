"""Static previews of the knowledge-time lenses (docs/semantics.md): lead times and booked ahead.

Tables first (``leadtime_points``, ``booked_ahead_table``: pure polars, every number a figure
shows), figures second, on the same figure helpers and matplotlib extra as ``exporter.plot``.
Read from a reconstruction directory: ``leadtime.parquet`` and the booked-ahead nodes family.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from exporter.layout import LEADTIME_FILE, family_file
from exporter.metrics import booked_ahead_name
from exporter.plot import PlotResult, _finish, _new_figure, bucket_means

LEADTIME_COLOURS = {"requested": "#3274d9", "effective": "#ff9830"}
LEADTIME_LABELS = {"requested": "requested (start − creation)", "effective": "effective (first launch − creation)"}


def leadtime_points(leadtimes: pl.DataFrame, *, site: str) -> pl.DataFrame:
    """created_at, kind (requested | effective), hours: one point per lease and kind with a value."""
    rows = leadtimes.filter(pl.col("site") == site)
    return pl.concat([rows.filter(pl.col(column).is_not_null()).select(
        "created_at", kind=pl.lit(kind), hours=pl.col(column).dt.total_seconds(fractional=True) / 3600)
        for kind, column in (("requested", "requested_lead_time"), ("effective", "effective_lead_time"))])


def booked_ahead_table(booked: pl.DataFrame, *, site: str) -> pl.DataFrame:
    """timestamp and one column per horizon: booked-ahead nodes summed over node types."""
    return (booked.filter(pl.col("site") == site).group_by("timestamp", "horizon").agg(pl.col("value").sum())
            .pivot(on="horizon", index="timestamp", values="value", sort_columns=True).sort("timestamp")
            .fill_null(0.0))


def leadtime_figure(leadtimes: pl.DataFrame, *, site: str):
    """One point per lease: x = creation, y = lead time (requested and effective, symlog hours)."""
    points = leadtime_points(leadtimes, site=site)
    figure = _new_figure()
    ax = figure.add_subplot()
    for kind, colour in LEADTIME_COLOURS.items():
        rows = points.filter(pl.col("kind") == kind)
        ax.scatter(rows["created_at"].to_numpy(), rows["hours"].to_numpy(), s=6, alpha=0.5, color=colour,
                   linewidths=0, label=LEADTIME_LABELS[kind])
    ax.set_yscale("symlog", linthresh=1.0)
    _finish(ax, title=f"{site}: lead time per lease, by creation", ylabel="hours (symlog)")
    return figure


def booked_ahead_figure(booked: pl.DataFrame, *, site: str):
    """Nodes booked over the next 1d / 7d / 30d as known at each time (all node types)."""
    table = bucket_means(booked_ahead_table(booked, site=site))
    figure = _new_figure(height=4.0)
    ax = figure.add_subplot()
    x = table["timestamp"].to_numpy()
    for horizon in sorted(table.columns[1:], key=lambda h: int(h[:-1])):
        ax.step(x, table[horizon].to_numpy(), where="post", linewidth=1, label=f"next {horizon}")
    ax.set_ylim(bottom=0)
    _finish(ax, title=f"{site}: nodes booked ahead, as known then", ylabel="nodes")
    return figure


def render_lens_plots(reconstruction_dirs: tuple[str | Path, ...], out_dir: str | Path, *,
                      sites: tuple[str, ...] = (), dpi: int = 100) -> PlotResult:
    """``<site>-leadtime.png`` and ``<site>-booked-ahead.png`` for each site of the given
    reconstruction directories that has lead times / booked-ahead series (others: nothing)."""
    out = Path(out_dir)
    written = []
    for directory in (Path(d) for d in reconstruction_dirs if Path(d).is_dir()):
        lead, booked = directory / LEADTIME_FILE, family_file(directory, booked_ahead_name("nodes"))
        frames = {"leadtime": (pl.read_parquet(lead) if lead.exists() else None, leadtime_figure),
                  "booked-ahead": (pl.read_parquet(booked) if booked.exists() else None, booked_ahead_figure)}
        for kind, (frame, draw) in frames.items():
            if frame is None:
                continue
            for site in sorted(frame["site"].unique().to_list()):
                if sites and site not in sites:
                    continue
                out.mkdir(parents=True, exist_ok=True)
                path = out / f"{site}-{kind}.png"
                draw(frame, site=site).savefig(path, dpi=dpi, metadata={"Software": None})
                written.append(path)
    return PlotResult(out_dir=out, paths=tuple(written))

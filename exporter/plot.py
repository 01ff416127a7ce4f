"""Static previews of the dashboards' views (site usage, utilization, cross-site), as PNG.

Tables first, pictures second: ``state_table`` and ``utilization_table`` are pure polars over a
timeline (TIMELINE_SCHEMA) and hold every number a figure shows; the ``*_figure`` functions draw
them on a new :class:`matplotlib.figure.Figure` (no pyplot, no global ``rcParams`` changes) and
return it. matplotlib is an optional extra (``pip install 'openstack-usage-exporter[plot]'``);
without it the figure functions raise :class:`ToolMissing` naming that command.

The colours are the ones the Grafana dashboards use, so previews and dashboards read alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from exporter.colours import detected_in, site_colours
from exporter.config import Config
from exporter.layout import read_device_timeline, read_timeline
from exporter.errors import TimelineError, ToolMissing
from exporter.columns import POOL_ONDEMAND, POOL_RESERVABLE, POOL_UNKNOWN, TIMELINE_RESOURCES

INSTALL_HINT = "plotting needs matplotlib: pip install 'openstack-usage-exporter[plot]'"
# (pool, state) in stacking order, bottom up, with the dashboards' colours.
STATE_COLOURS: dict[tuple[str, str], str] = {
    (POOL_RESERVABLE, "active"): "#3274d9",
    (POOL_RESERVABLE, "stopped"): "#8f3bb8",
    (POOL_RESERVABLE, "idle"): "#fade2a",
    (POOL_RESERVABLE, "maintenance"): "#ff9830",
    (POOL_RESERVABLE, "available"): "#9ac48a",
    (POOL_ONDEMAND, "active"): "#8ab8ff",
    (POOL_ONDEMAND, "stopped"): "#ca95e5",
    (POOL_ONDEMAND, "available"): "#c8f2c2",
    # no evidence decides the pool: a neutral grey, on top, never inside another pool's colour
    (POOL_UNKNOWN, "available"): "#c4c4c4",
}
TOTAL_COLOUR = "#808080"
RESERVABLE_COLOUR = "#404040"
# Utilization numerators over the reservable pool (the dashboards' percent panel).
SHARES = {"committed": ("idle", "active", "stopped"), "occupied": ("active", "stopped"), "active": ("active",)}
TARGET_UTILIZATION = 0.8


def leaf_name(pool: str, state: str) -> str:
    return f"{pool} · {state}"


def _select(timeline: pl.DataFrame, *, resource: str, sites: tuple[str, ...] | None) -> pl.DataFrame:
    if resource not in TIMELINE_RESOURCES:
        raise TimelineError(f"unknown resource {resource!r} (one of {', '.join(TIMELINE_RESOURCES)})")
    chosen = timeline.filter(pl.col("resource") == resource)
    if sites:
        chosen = chosen.filter(pl.col("site").is_in(sites))
    if chosen.height == 0:
        wanted = f"site(s) {', '.join(sites)}" if sites else "any site"
        raise TimelineError(f"the timeline has no {resource} rows for {wanted}")
    return chosen


def state_table(timeline: pl.DataFrame, *, site: str, resource: str = "nodes") -> pl.DataFrame:
    """timestamp, one column per ``leaf_name(pool, state)`` (STATE_COLOURS order), total, reservable.

    Summed over node types; a leaf missing from the timeline is a column of zeros.
    """
    rows = _select(timeline, resource=resource, sites=(site,))
    wide = (rows.with_columns(pl.concat_str("pool", pl.lit(" · "), "state").alias("leaf"))
            .pivot(on="leaf", index="timestamp", values="value", aggregate_function="sum")
            .sort("timestamp"))
    leaves = [leaf_name(*key) for key in STATE_COLOURS]
    wide = wide.with_columns([pl.lit(0.0).alias(name) for name in leaves if name not in wide.columns])
    wide = wide.select("timestamp", *[pl.col(name).fill_null(0.0) for name in leaves])
    reservable = [leaf_name(pool, state) for pool, state in STATE_COLOURS if pool == POOL_RESERVABLE]
    return wide.with_columns(pl.sum_horizontal(leaves).alias("total"),
                             pl.sum_horizontal(reservable).alias("reservable"))


def utilization_table(timeline: pl.DataFrame, *, sites: tuple[str, ...] | None = None, resource: str = "nodes",
                      window: str = "30d") -> pl.DataFrame:
    """site, timestamp, reservable, committed, occupied, active, and ``<share>_ratio`` = share / reservable,
    plus ``committed_rolling``: Σ committed / Σ reservable over the trailing ``window`` (time-weighted
    on the timeline's regular grid, like the dashboards' increase(counter[30d]) ratio).
    """
    rows = _select(timeline, resource=resource, sites=sites).filter(pl.col("pool") == POOL_RESERVABLE)
    sums = [pl.col("value").filter(pl.col("state").is_in(states)).sum().alias(share)
            for share, states in SHARES.items()]
    table = (rows.group_by("site", "timestamp").agg(pl.col("value").sum().alias("reservable"), *sums)
             .sort("site", "timestamp"))
    rolling_committed = pl.col("committed").rolling_sum_by("timestamp", window_size=window).over("site")
    rolling_reservable = pl.col("reservable").rolling_sum_by("timestamp", window_size=window).over("site")
    return _with_ratios(table.with_columns(committed_rolling=pl.when(rolling_reservable > 0)
                                           .then(rolling_committed / rolling_reservable)))


def _with_ratios(table: pl.DataFrame) -> pl.DataFrame:
    return table.with_columns(**{f"{share}_ratio": pl.when(pl.col("reservable") > 0)
                                 .then(pl.col(share) / pl.col("reservable")) for share in SHARES})


def bucket_means(table: pl.DataFrame, *, points: int = 1000, by: str | None = None) -> pl.DataFrame:
    """Means of every column over equal time buckets, so a long hourly history draws as at most
    about ``points`` steps per line (a mean of stacked leaves still adds up to the mean total)."""
    span = table["timestamp"].max() - table["timestamp"].min()
    hours = max(1, -(-int(span.total_seconds()) // (3600 * points)))
    if hours == 1:
        return table
    values = [name for name in table.columns if name not in ("timestamp", by)]
    return (table.sort(*([by] if by else []), "timestamp")
            .group_by_dynamic("timestamp", every=f"{hours}h", group_by=by)
            .agg(pl.col(values).mean()))


def bucket_utilization(table: pl.DataFrame, *, points: int = 1000) -> pl.DataFrame:
    """``utilization_table`` over buckets: ratios of the bucket sums (time-weighted)."""
    shares = ["reservable", *SHARES, "committed_rolling"]
    return _with_ratios(bucket_means(table.select("site", "timestamp", *shares), points=points, by="site"))


def _new_figure(width: float = 11.0, height: float = 5.0):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ToolMissing(INSTALL_HINT) from None
    return Figure(figsize=(width, height), layout="constrained")


def _finish(ax, *, title: str, ylabel: str, legend_columns: int = 1) -> None:
    ax.set_title(title, loc="left")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.margins(x=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), ncols=legend_columns, fontsize="small", frameon=False)


def site_usage_figure(timeline: pl.DataFrame, *, site: str, resource: str = "nodes", unit: str | None = None):
    """Stacked states (they add up to the total line) with the total and reservable-pool lines;
    ``unit`` names what is counted (default: the resource; an edge site's: devices)."""
    table = bucket_means(state_table(timeline, site=site, resource=resource))
    figure = _new_figure()
    ax = figure.add_subplot()
    x = table["timestamp"].to_numpy()
    base = 0.0
    for (pool, state), colour in STATE_COLOURS.items():
        layer = table[leaf_name(pool, state)].to_numpy()
        top = base + layer
        if layer.any():  # leave empty states out of the legend
            ax.fill_between(x, base, top, step="post", color=colour, linewidth=0, label=leaf_name(pool, state))
        base = top
    ax.step(x, table["total"].to_numpy(), where="post", color=TOTAL_COLOUR, linewidth=1.5, label="total capacity")
    ax.step(x, table["reservable"].to_numpy(), where="post", color=RESERVABLE_COLOUR, linewidth=1.2,
            linestyle="--", label="reservable pool")
    ax.set_ylim(bottom=0)
    _finish(ax, title=f"{site}: {unit or resource} by state", ylabel=unit or resource)
    return figure


def utilization_figure(timeline: pl.DataFrame, *, site: str, resource: str = "nodes", unit: str | None = None):
    """committed / occupied / active as shares of the reservable pool."""
    table = bucket_utilization(utilization_table(timeline, sites=(site,), resource=resource))
    figure = _new_figure(height=4.0)
    ax = figure.add_subplot()
    x = table["timestamp"].to_numpy()
    colours = {"committed": STATE_COLOURS[(POOL_RESERVABLE, "idle")],
               "occupied": STATE_COLOURS[(POOL_RESERVABLE, "stopped")],
               "active": STATE_COLOURS[(POOL_RESERVABLE, "active")]}
    for share, colour in colours.items():
        ax.step(x, table[f"{share}_ratio"].to_numpy() * 100, where="post", color=colour, linewidth=1, label=share)
    ax.plot(x, table["committed_rolling"].to_numpy() * 100, color="#000000", linewidth=1.5,
            label="committed, 30-day mean")
    ax.axhline(TARGET_UTILIZATION * 100, color="#e02f44", linestyle=":", linewidth=1, label="80 %")
    ax.set_ylim(0, 100)
    _finish(ax, title=f"{site}: share of the reservable pool ({unit or resource})", ylabel="%")
    return figure


def cross_site_figure(timeline: pl.DataFrame, *, sites: tuple[str, ...] | None = None, resource: str = "nodes",
                      config: Config | None = None, edge: tuple[str, ...] = (),
                      detected: dict[str, str] | None = None):
    """Top: capacity per site, stacked, with the all-sites total. Bottom: committed / reservable per
    site (thin) and its 30-day rolling mean (thick), each site in its configured colour
    (``exporter.colours``, the dashboards' colours). ``edge``: sites whose rows count devices;
    ``detected``: site -> what reconstruct found its hosts to be (colours)."""
    table = bucket_utilization(utilization_table(timeline, sites=sites, resource=resource))
    capacity = (_select(timeline, resource=resource, sites=sites).group_by("site", "timestamp")
                .agg(pl.col("value").sum()).pivot(on="site", index="timestamp", values="value")
                .sort("timestamp").fill_null(0.0))
    capacity = bucket_means(capacity)
    names = sorted(capacity.columns[1:])
    colour = site_colours(config, names, {**(detected or {}), **{site: "edge" for site in edge}})
    figure = _new_figure(height=7.0)
    top, bottom = figure.subplots(2, 1, sharex=True)
    x = capacity["timestamp"].to_numpy()
    base = 0.0
    for site in names:
        upper = base + capacity[site].to_numpy()
        top.fill_between(x, base, upper, step="post", color=colour[site], alpha=0.8, linewidth=0, label=site)
        base = upper
    top.step(x, base, where="post", color=TOTAL_COLOUR, linewidth=1.5, label="all sites")
    top.set_ylim(bottom=0)
    _finish(top, title=f"Capacity by site ({resource}{'; edge sites: devices' if edge else ''})", ylabel=resource)
    for site in names:
        rows = table.filter(pl.col("site") == site)
        xs = rows["timestamp"].to_numpy()
        bottom.step(xs, rows["committed_ratio"].to_numpy() * 100, where="post", color=colour[site],
                    linewidth=0.6, alpha=0.5)
        bottom.plot(xs, rows["committed_rolling"].to_numpy() * 100, color=colour[site], linewidth=2,
                    label=f"{site} 30-day mean")
    bottom.axhline(TARGET_UTILIZATION * 100, color="#e02f44", linestyle=":", linewidth=1, label="80 %")
    bottom.set_ylim(0, 100)
    _finish(bottom, title="Committed / reservable by site", ylabel="%")
    return figure


def _timelines(timeline_dirs: tuple[str | Path, ...], resource: str) -> tuple[pl.DataFrame, set[str]]:
    """Every given timeline, plus (for ``nodes``) the device timelines of edge sites beside them
    (an edge site's devices are its nodes in the figures), and the set of those edge sites."""
    frames, edge = [], set()
    for path in timeline_dirs:
        frames.append(read_timeline(Path(path)))
        devices = read_device_timeline(Path(path)) if resource == "nodes" else None
        if devices is not None and devices.height:
            frames.append(devices)
            edge |= set(devices.get_column("site").cast(pl.String).unique().to_list())
    return pl.concat(frames, how="vertical_relaxed"), edge


@dataclass(frozen=True)
class PlotResult:
    out_dir: Path
    paths: tuple[Path, ...]


def render_plots(timeline_dirs: tuple[str | Path, ...], out_dir: str | Path, *, sites: tuple[str, ...] = (),
                 resource: str = "nodes", dpi: int = 100, config: Config | None = None) -> PlotResult:
    """Write ``<site>-usage.png`` and ``<site>-utilization.png`` per site, and ``cross-site.png`` when
    there is more than one site, from one or more timeline directories (or timeline.parquet files);
    an edge site's device_timeline.parquet beside its timeline is drawn as its nodes (labelled devices)."""
    _new_figure()  # fail early, before reading anything, when matplotlib is missing
    timeline, edge = _timelines(timeline_dirs, resource)
    chosen = tuple(sites) or tuple(sorted(timeline["site"].unique().to_list()))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    unit = {site: "devices" if site in edge else None for site in chosen}
    figures = [(f"{site}-usage.png", site_usage_figure(timeline, site=site, resource=resource, unit=unit[site]))
               for site in chosen]
    figures += [(f"{site}-utilization.png", utilization_figure(timeline, site=site, resource=resource,
                                                               unit=unit[site])) for site in chosen]
    if len(chosen) > 1:
        figures.append(("cross-site.png", cross_site_figure(timeline, sites=chosen, resource=resource, config=config,
                                                            edge=tuple(s for s in chosen if s in edge),
                                                            detected=detected_in(timeline_dirs))))
    for name, figure in figures:
        path = out / name
        figure.savefig(path, dpi=dpi, metadata={"Software": None})
        written.append(path)
    return PlotResult(out_dir=out, paths=tuple(written))

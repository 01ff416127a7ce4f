"""The legacy-vs-reconstructed facet figure: one panel per level, daily node-hours summed over
node types, legacy in grey and the reconstruction in the site's colour (exporter.colours)."""

from __future__ import annotations

import polars as pl

from exporter.colours import site_colours
from exporter.config import Config
from exporter.engine.sweepline import order_free_sum
from exporter.plot import _new_figure
from exporter.reports.legacy import LEGACY_LEVELS

LEGACY_COLOUR = "#404040"


def comparison_figure(comparison: pl.DataFrame, *, config: Config | None = None,
                      detected: dict[str, str] | None = None):
    """Rows of panels = levels (LEGACY_LEVELS order); lines per site (``detected``: site -> kind)."""
    legacy = pl.when(pl.col("legacy_hours").is_not_null().any()).then(order_free_sum(pl.col("legacy_hours")))
    daily = (comparison.group_by("site", "date", "level")  # a day without legacy rows is a gap, not a zero
             .agg(legacy.alias("legacy_hours"), order_free_sum(pl.col("reconstructed_hours"))).sort("date"))
    sites = sorted(daily["site"].unique().to_list())
    colours = site_colours(config, sites, detected)
    levels = list(LEGACY_LEVELS)
    figure = _new_figure(width=11.0, height=2.0 * len(levels))
    axes = figure.subplots(len(levels), 1, sharex=True)
    for ax, level in zip(axes, levels):
        for site in sites:
            rows = daily.filter((pl.col("site") == site) & (pl.col("level") == level))
            x = rows["date"].to_numpy()
            ax.step(x, rows["legacy_hours"].fill_null(float("nan")).to_numpy(), where="post", color=LEGACY_COLOUR,
                    linewidth=2.0, alpha=0.5, label=f"{site} legacy")
            ax.step(x, rows["reconstructed_hours"].to_numpy(), where="post", color=colours[site], linewidth=0.8,
                    alpha=0.85, label=f"{site} reconstructed")
        ax.set_title(f"{level}: node-hours per day", loc="left", fontsize="medium")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.margins(x=0)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return figure

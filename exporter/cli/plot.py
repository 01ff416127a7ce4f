"""``usage-exporter plot``: PNG previews of the dashboards' views from reconstructed timelines."""

from __future__ import annotations

from pathlib import Path

import click

from exporter.cli.options import config_option
from exporter.columns import TIMELINE_RESOURCES


@click.command("plot")
@click.argument("timeline_dirs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the PNG files (created if missing).")
@click.option("--site", "sites", multiple=True, help="Only this site (repeatable). Default: every site found.")
@click.option("--resource", type=click.Choice(list(TIMELINE_RESOURCES)), default="nodes", show_default=True,
              help="Which resource to draw.")
@click.option("--dpi", type=click.IntRange(50, 600), default=100, show_default=True, help="Image resolution.")
@config_option
def command(timeline_dirs, out_dir, sites, resource, dpi, config_path):
    """Draw site usage (stacked states), utilization (% of the reservable pool, 30-day mean) and,
    for several sites, a cross-site view, from one or more TIMELINE_DIRs (reconstruct outputs);
    from a reconstruction directory also the lead time per lease and the nodes booked ahead.

    Site colours come from the config (site_colours) when it exists, as in the dashboards; a site
    whose hosts are KVM (audit.json beside its timeline, or hypervisor: kvm) is yellow. Needs the optional extra: pip install 'openstack-usage-exporter[plot]'.

    \b
    Example:
      usage-exporter plot out/chi_uc out/chi_tacc --out docs/images
    """
    from exporter.config import load_config
    from exporter.plot import render_plots
    from exporter.plot_lenses import render_lens_plots

    config = load_config(config_path) if Path(config_path).exists() else None
    result = render_plots(timeline_dirs, out_dir, sites=sites, resource=resource, dpi=dpi, config=config)
    lenses = render_lens_plots(timeline_dirs, out_dir, sites=sites, dpi=dpi)
    for path in (*result.paths, *lenses.paths):
        click.echo(f"wrote {path}")

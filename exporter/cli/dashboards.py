"""``usage-exporter dashboards``: write the Grafana provisioning JSON for a sites config."""

from __future__ import annotations

from pathlib import Path

import click

from exporter.cli.options import config_option


@click.command("dashboards")
@config_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("grafana/dashboards"),
              show_default=True, help="Directory for the dashboard JSON files (created if missing).")
def command(config_path, out_dir):
    """Generate every Grafana dashboard (site, all sites, node-hours report, exporter health) for
    the sites in the config, with each site's fixed colour (site_colours; KVM sites yellow:
    detected from each site's newest reconstruction under data_dir, or hypervisor: kvm;
    edge sites green, and the site dashboard's devices row open when there is one).

    The shipped grafana/dashboards/*.json are this command's output for etc/sites.yaml.
    Needs the optional extra: pip install 'openstack-usage-exporter[dashboards]'.

    \b
    Example:
      usage-exporter dashboards --config etc/sites.yaml --out grafana/dashboards
    """
    from exporter.config import load_config
    from exporter.dashboards import write_dashboards

    result = write_dashboards(load_config(config_path), out_dir)
    for path in result.paths:
        click.echo(f"wrote {path}")
    click.echo("site colours: " + ", ".join(f"{site} {colour}" for site, colour in result.colours.items()))

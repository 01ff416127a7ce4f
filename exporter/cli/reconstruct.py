"""``usage-exporter reconstruct``: one snapshot -> spans, rejects, timeline and audit."""

from __future__ import annotations

from pathlib import Path

import click

from exporter.cli.options import DateTime, Duration, config_option, snapshot_time_option
from exporter.config import DEFAULT_HISTORY_START, SiteConfig, check_site_name, load_config
from exporter.errors import ConfigError
from exporter.snapshots import newest_snapshot
from exporter.progress import for_cli
from exporter.reconstruct.pipeline import STAGES, ReconstructOptions, reconstruct_to_directory

DEFAULT_START = f"{DEFAULT_HISTORY_START:%Y-%m-%d}"


@click.command("reconstruct")
@click.argument("snapshot_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--site", "site_name", required=True, metavar="NAME",
              help="Site name (labels the output; with a config also its history_start and maintenance projects).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output directory for spans/rejected/timeline parquet and audit.json.")
@click.option("--from", "start", type=DateTime(), default=None,
              help=f"Timeline start [default: the site's history_start from the config, else {DEFAULT_START}].")
@click.option("--to", "end", type=DateTime(), default=None,
              help="Timeline end (exclusive) [default: snapshot time floored to the step].")
@click.option("--step", type=Duration(), default="1h", show_default=True, help="Timeline grid step.")
@snapshot_time_option
@click.option("--allow-incomplete", is_flag=True,
              help="Use a snapshot although a required table was not copied or a file fails the manifest's "
                   "sha256 check (warned about in the summary and audit.json).")
@config_option
@click.option("--rules", "rules_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Manual rules file (docs/rules.md) [default: the site's rules: from the config, if any].")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(snapshot_dir, site_name, out_dir, start, end, step, snapshot_time, allow_incomplete, config_path,
            rules_path,
            quiet) -> None:
    """Rebuild the site's history from SNAPSHOT_DIR into OUT_DIR, checking both invariants.

    Without SNAPSHOT_DIR the newest complete snapshot under <data_dir>/<site>/ from the config is
    used. The snapshot is checked against its manifest first (every required table copied, every
    file's sha256); a directory without a manifest is used with a warning. The outputs replace the
    previous ones as one set, only once all are written. Exit code 3 when rows or hours do not balance (the numbers must not be used).

    \b
    Examples:
      usage-exporter reconstruct data/demo/20261121T230000Z --site demo --out out/demo
      usage-exporter reconstruct --site chi_uc --config etc/sites.yaml --out out/chi_uc --step 1d
    """
    options, snapshot_dir = resolve_options(snapshot_dir, site_name, config_path, start=start, end=end, step=step,
                                            snapshot_time=snapshot_time, rules_path=rules_path,
                                            allow_incomplete=allow_incomplete)
    click.echo(reconstruct_to_directory(snapshot_dir, options, out_dir,
                                        progress=for_cli(quiet=quiet, stages=len(STAGES))))


def resolve_options(snapshot_dir, site_name, config_path, **window) -> tuple[ReconstructOptions, Path]:
    """Options from the command line, filled from the site's config entry when there is one."""
    from exporter.stage_options import reconstruct_options  # it imports backfill: load it only when used

    check_site_name(site_name)  # it names directories and labels
    config = load_config(config_path) if config_path and Path(config_path).exists() else None
    site = config.find_site(site_name, resolve_env=False) if config else None
    if snapshot_dir is None:
        if config is None:
            raise ConfigError("give SNAPSHOT_DIR, or --site with a config file to use its newest snapshot")
        snapshot_dir = newest_snapshot(config.data_dir / site_name,
                                       allow_incomplete=window.get("allow_incomplete", False))
    site = site or SiteConfig(name=site_name, display_name=site_name)  # the defaults of a configured site
    return reconstruct_options(site, **window), snapshot_dir


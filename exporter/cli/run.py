"""``usage-exporter run``: extract -> reconstruct -> backfill for one site, as one command."""

from __future__ import annotations

from pathlib import Path

import click

from exporter.cli.options import config_option, keep_openmetrics_option


@click.command("run")
@click.option("--site", "site_name", required=True, metavar="NAME", help="Site from the config file.")
@config_option
@click.option("--snapshot", "snapshot_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Use this snapshot instead of extracting a new one.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory [default: <data_dir>/<site>/out/<snapshot>].")
@click.option("--blocks/--no-blocks", default=True, show_default=True, help="Create TSDB blocks with promtool.")
@click.option("--promtool", "promtool_path", metavar="PATH", help="promtool binary (default: from PATH).")
@click.option("--mimir", is_flag=True, help="6h blocks, as Mimir's block upload accepts.")
@keep_openmetrics_option
@click.option("--rules", "rules_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Manual rules file (docs/rules.md) [default: the site's rules: from the config, if any].")
@click.option("--allow-incomplete", is_flag=True,
              help="Go on although a required table was not copied or a snapshot file fails its sha256 check.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(site_name, config_path, snapshot_dir, out_dir, blocks, promtool_path, mimir, keep_openmetrics, rules_path,
            allow_incomplete, quiet):
    """Extract the site's databases (or use --snapshot), reconstruct its history from the site's
    history_start, and backfill it (OpenMetrics files + promtool blocks), printing the next steps.
    Once a window's block is verified its OpenMetrics file is overwritten by a later window, and
    the files left are removed at the end (--keep-openmetrics keeps every file; with --no-blocks
    the files are the output and stay).

    \b
    Example:
      usage-exporter run --site chi_uc --config etc/sites.yaml
    """
    # imported here, not at the top: `usage-exporter --help` loads every subcommand module
    from exporter.backfill.blocks import require_blocks
    from exporter.backfill.report import next_steps, summary
    from exporter.config import load_config
    from exporter.progress import for_cli
    from exporter.run import STAGES, run_site

    result = run_site(load_config(config_path), site_name, snapshot_dir=snapshot_dir, out_dir=out_dir,
                      blocks=blocks, promtool=promtool_path, mimir=mimir, keep_openmetrics=keep_openmetrics,
                      allow_incomplete=allow_incomplete,
                      progress=for_cli(quiet=quiet, stages=STAGES), rules_path=rules_path)
    click.echo(f"snapshot: {result.snapshot_dir}\n{result.reconstruct_summary}\n")
    click.echo(summary(result.backfill))
    click.echo("\n" + next_steps(result.backfill))
    require_blocks(result.backfill)

"""``usage-exporter backfill``: timeline -> OpenMetrics files -> promtool blocks, then next steps."""

from __future__ import annotations

from pathlib import Path

import click

from exporter.cli.options import history_options, keep_openmetrics_option


@click.command("backfill")
@click.argument("timeline_dir", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output directory: openmetrics/, blocks/ and backfill.json.")
@click.option("--blocks", is_flag=True, help="Also create TSDB blocks with promtool (in parallel).")
@click.option("--promtool", "promtool_path", metavar="PATH", help="promtool binary (default: from PATH).")
@history_options
@keep_openmetrics_option
@click.option("--mimir", is_flag=True, help="6h blocks, as Mimir's block upload accepts (default: 1458h).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(timeline_dir, out_dir, blocks, promtool_path, holdback, site, config_path, job, instance, keep_openmetrics,
            mimir, quiet):
    """Turn a reconstructed timeline (TIMELINE_DIR/timeline.parquet) into Prometheus history.

    Writes one OpenMetrics file per block window, and with --blocks runs promtool on each (in
    parallel) to make TSDB blocks, checks each block against its file and removes the file
    (--keep-openmetrics keeps it). Samples at or after min(end of timeline, now) - --holdback are
    never written: the live exporter owns them. Without --blocks, or without promtool, it prints
    the exact promtool commands. It always prints the next steps (retention, installing blocks,
    Thanos/Mimir upload).

    \b
    Example:
      usage-exporter backfill out/chi_uc --out backfill/chi_uc --blocks
    """
    # imported here, not at the top: `usage-exporter --help` loads every subcommand module
    from exporter.backfill.blocks import backfill, require_blocks
    from exporter.backfill.report import next_steps, summary
    from exporter.cli.options import history_settings
    from exporter.progress import for_cli

    options = history_settings(site, config_path, holdback, job, instance)
    result = backfill(timeline_dir, out_dir, blocks=blocks, promtool=promtool_path,
                      holdback=options.holdback, job=options.job, instance=options.instance, mimir=mimir,
                      origin=options.origin, keep_openmetrics=keep_openmetrics, progress=for_cli(quiet=quiet, stages=1))
    click.echo(summary(result))
    click.echo("\n" + next_steps(result))
    require_blocks(result)

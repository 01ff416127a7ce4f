"""``usage-exporter compare``: the reconstruction against the legacy usage reports."""

from __future__ import annotations

from pathlib import Path

import click

from exporter.cli.options import config_option


@click.command("compare")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--snapshot", "snapshot_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Snapshot holding chameleon_usage.node_usage_report_cache (default: the one OUT was "
                   "reconstructed from, as its audit.json records).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for comparison.parquet/.csv/.png (default: OUT's timeline directory).")
@click.option("--no-figure", is_flag=True, help="Skip the facet figure (no matplotlib needed).")
@config_option
def command(out, snapshot_dir, out_dir, no_figure, config_path):
    """Compare OUT (a reconstruct output) with the legacy daily node-hours per node type.

    Writes one row per (site, date, node_type, level) with legacy_hours, reconstructed_hours,
    difference_hours, relative_difference and a finding (agrees, missing_in_databases,
    missing_in_legacy, definition), and comparison.png: one panel per level, legacy vs
    reconstructed. The mapping of legacy columns to levels is in docs/legacy.md.

    \b
    Example:
      usage-exporter compare out/chi_uc
    """
    from exporter.config import load_config
    from exporter.reports import run_compare

    config = load_config(config_path) if Path(config_path).exists() else None
    result = run_compare(out, snapshot_dir=snapshot_dir, out_dir=out_dir, config=config, figure=not no_figure)
    if result.nothing_to_compare:
        click.echo(result.nothing_to_compare)
        return
    for path in result.paths:
        click.echo(f"wrote {path}")
    click.echo(_summary_text(result.summary))


def _summary_text(summary) -> str:
    lines = [f"{'level':<12}{'legacy h':>14}{'rebuilt h':>14}{'diff':>9}  agrees / in_databases / in_legacy / definition"]
    for row in summary.iter_rows(named=True):
        diff = row["relative_difference"]
        lines.append(f"{row['level']:<12}{row['legacy_hours']:>14,.0f}{row['reconstructed_hours']:>14,.0f}"
                     f"{'' if diff is None else f'{diff * 100:+.2f}%':>9}  {row['agrees']} / "
                     f"{row['missing_in_databases']} / {row['missing_in_legacy']} / {row['definition']}")
    return "\n".join(lines)

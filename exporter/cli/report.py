"""``usage-exporter report``: KPI tables per calendar period, or the coverage table."""

from __future__ import annotations

from pathlib import Path

import click

from exporter.reports.kpi import PERIODS


@click.command("report")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--period", type=click.Choice(list(PERIODS)), default="month", show_default=True,
              help="Calendar period of each row (UTC; weeks start on Monday).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the report files (default: OUT's timeline directory).")
@click.option("--db-url", help="Also write the rows into this database (e.g. mysql+pymysql://user:pw@host/db); "
                               "the reported periods' rows are replaced in one transaction.")
@click.option("--table", "table_name", default="usage_kpi", show_default=True, help="Table for --db-url "
              "(created if absent).")
@click.option("--coverage", is_flag=True, help="Instead: per year x level, hours counted, clipped, rejected "
                                              "(by reason) and unknown, and the sources that evidenced them.")
def command(out, period, out_dir, db_url, table_name, coverage):
    """Node-, vCPU- and GPU-hours per level (total, reservable, committed, maintenance, occupied,
    active, stopped, idle, available, and each other pool, e.g. ondemand / unknown) with
    utilization ratios, one row per (site, period, node_type), from OUT (a reconstruct output):
    report-<period>.csv/.parquet/.md. The same numbers as the node-hours dashboard. An edge
    site's devices: device-hours per (site, period, machine_name) in report-<period>-devices.*
    (and with --db-url in the table <table>_devices).

    \b
    Examples:
      usage-exporter report out/chi_uc --period week --db-url mysql+pymysql://kpi@db/kpi --table usage_weekly
      usage-exporter report out/chi_uc --coverage
    """
    from exporter.reports import run_coverage, run_report

    if coverage:
        result = run_coverage(out, out_dir=out_dir)
    else:
        result = run_report(out, period=period, out_dir=out_dir, db_url=db_url, table_name=table_name)
    for path in result.paths:
        click.echo(f"wrote {path}")
    for name, rows in (result.sql_rows or {}).items():
        click.echo(f"{rows} rows written to table {name} (reported periods replaced)")
    if coverage:
        click.echo((Path(result.paths[-1])).read_text().rstrip())

"""``usage-exporter extract``: copy a site's tables into a new dated parquet snapshot."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from exporter.cli.options import config_option
from exporter.cli.sitechoice import site_from_options, site_options

if TYPE_CHECKING:
    from exporter.extract.copy import ExtractResult


@click.command("extract")
@site_options
@config_option
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Snapshot root; the snapshot goes to OUT/<site>/<snapshot-id>/. "
                   "[default: data_dir from the config, else ./data]")
@click.option("--snapshot-id", default=None, help="Snapshot directory name [default: UTC time like 20261121T230000Z].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(db_url, site_name, db_prefix, config_path, out, snapshot_id, quiet) -> None:
    """Copy every table the tool reads into an immutable, dated parquet snapshot.

    Read-only (a READ ONLY transaction, SELECTs only). Each table gets a status
    (ok / missing / permission_denied / ...); optional tables that are absent are fine. Exit
    code 0 when every required table was copied, 1 otherwise (the snapshot is still written).

    \b
    Examples:
      usage-exporter extract --db-url sqlite:///demo/site.sqlite --out data
      usage-exporter extract --site chi_uc --config etc/sites.yaml
    """
    # imported here, not at the top: `usage-exporter --help` loads every subcommand module
    from exporter.extract.copy import extract_snapshot
    from exporter.progress import for_cli

    site, data_dir = site_from_options(db_url=db_url, site_name=site_name, db_prefix=db_prefix,
                                       config_path=config_path)
    result = extract_snapshot(site, out or data_dir, snapshot_id=snapshot_id, progress=for_cli(quiet=quiet))
    click.echo(status_table(result))
    for warning in result.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    if result.failed_required:
        click.secho(f"error: {len(result.failed_required)} required table(s) not copied: "
                    f"{', '.join(result.failed_required)}", fg="red", err=True)
        sys.exit(1)


def status_table(result: ExtractResult) -> str:
    """Per-table status lines (absent optional tables summed up in one line), then where the snapshot is."""
    tables = result.manifest["tables"]
    absent = [name for name, entry in tables.items() if entry["status"] == "missing" and entry["optional"]]
    shown = {name: entry for name, entry in tables.items() if name not in absent}
    width = max((len(name) for name in shown), default=5)
    lines = [f"{'table':<{width}}  {'status':<17} {'rows':>10}  note"]
    for name, entry in shown.items():
        rows = "" if entry["rows"] is None else f"{entry['rows']:,}"
        note = _note(name, entry)
        lines.append(f"{name:<{width}}  {entry['status']:<17} {rows:>10}  {note}".rstrip())
    if absent:
        lines.append(f"{len(absent)} optional table(s) absent (fine; listed in manifest.json): "
                     + ", ".join(sorted(absent)))
    copied = sum(1 for entry in tables.values() if entry["file"])
    lines.append(f"snapshot: {result.snapshot_dir}  ({copied} of {len(tables)} tables copied)")
    return "\n".join(lines)


def _note(name: str, entry: dict) -> str:
    if entry["error"]:
        error = entry["error"].removeprefix(f"{name}: ")
        return error if entry["optional"] else f"REQUIRED: {error}"
    if entry["invalid_values"]:
        return "invalid values stored as null: " + ", ".join(f"{k}={v}" for k, v in entry["invalid_values"].items())
    return ""

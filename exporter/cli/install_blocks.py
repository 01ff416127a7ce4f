"""``usage-exporter install-blocks``: move exactly a backfill's blocks into a Prometheus data directory."""

from __future__ import annotations

from pathlib import Path

import click

from exporter.backfill.install import install_blocks


@click.command("install-blocks")
@click.argument("backfill_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Prometheus's --storage.tsdb.path (Debian: /var/lib/prometheus/metrics2).")
def command(backfill_dir, data_dir):
    """Install the blocks BACKFILL_DIR/backfill.json lists (and only those) into --data-dir.

    Refuses blocks that overlap a block already there (Prometheus would count that history
    twice) and manifests naming anything but block ids. Each block is copied next to its final
    place under a name Prometheus ignores, synced, given the data directory's owner, then renamed
    in: Prometheus loads it within a minute, no restart. A rerun skips blocks already installed.
    Set the retention first (see `usage-exporter backfill`'s next steps).

    \b
    Example:
      sudo usage-exporter install-blocks backfill/chi_uc --data-dir /var/lib/prometheus/metrics2
    """
    result = install_blocks(backfill_dir, data_dir)
    for block in result.installed:
        click.echo(f"installed {block.ulid}")
    if result.already_there:
        click.echo(f"{len(result.already_there)} block(s) were already installed (same id and time range): skipped")
    click.echo(f"{len(result.installed)} block(s) installed into {result.data_dir}; "
               "Prometheus loads them within a minute")

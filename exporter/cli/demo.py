"""``usage-exporter demo``: the main job on the embedded default (synthetic sites, SQLite)."""

from __future__ import annotations

from pathlib import Path

import click

from exporter.cli.options import DateTime


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo"),
              show_default=True, help="Directory for the demo databases, config, snapshots and outputs.")
@click.option("--years", type=click.FloatRange(min=0.1, max=12), default=2, show_default=True,
              help="Years of history to simulate, ending today.")
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed (same seed, same sites).")
@click.option("--start", type=DateTime(), help="Fix the history start (default: --years before today) "
              "for byte-identical reruns on another day.")
@click.option("--blocks/--no-blocks", default=True, show_default=True,
              help="Create Prometheus TSDB blocks with promtool (skipped with a note if promtool is missing).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(out_dir, years, seed, start, blocks, quiet):
    """Run the whole job on three synthetic sites (bare metal, KVM, CHI@Edge) stored in SQLite: generate ->
    extract -> reconstruct -> backfill, then compare the reconstruction with the simulated truth.
    """
    # imported here, not at the top: `usage-exporter --help` loads every subcommand module
    from exporter.demo import DEMO_SITES, run_demo, summary_text
    from exporter.progress import for_cli
    from exporter.run import STAGES

    stages = len(DEMO_SITES) * (1 + STAGES)
    result = run_demo(out_dir, years=years, seed=seed, start=start, blocks=blocks,
                      progress=for_cli(quiet=quiet, stages=stages))
    click.echo(summary_text(result))

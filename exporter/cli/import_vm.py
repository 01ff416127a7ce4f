"""``usage-exporter import-vm``: timeline -> VictoriaMetrics through its import API (no promtool)."""

from __future__ import annotations

from pathlib import Path

import click

from exporter.cli.options import history_options


@click.command("import-vm")
@click.argument("timeline_dir", type=click.Path(exists=True, path_type=Path))
@click.option("--url", required=True, metavar="URL",
              help="Where to import: a single node (http://127.0.0.1:8428) or a cluster's vminsert "
                   "(http://vminsert:8480/insert/<tenant>/prometheus).")
@click.option("--query-url", metavar="URL",
              help="Where to count the samples back [default: --url]; a cluster's vmselect "
                   "(http://vmselect:8481/select/<tenant>/prometheus).")
@history_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(timeline_dir, url, query_url, holdback, site, config_path, job, instance, quiet):
    """Import a reconstructed timeline's history straight into VictoriaMetrics.

    Sends exactly the samples `backfill` would write (same cut-off, names, labels and counters;
    the timeline's families and the extra ones beside it: devices, booked ahead, lead times),
    one request per ~61-day window, in parallel, as JSON lines to URL/api/v1/import. First it
    checks that the range holds none of these series' samples (VictoriaMetrics would store a
    re-import twice), afterwards that it holds exactly the samples sent (it silently drops samples
    older than its -retentionPeriod: start it with e.g. -retentionPeriod=100y).

    \b
    Example:
      usage-exporter import-vm out/chi_uc --url http://127.0.0.1:8428 --site chi_uc
    """
    # imported here, not at the top: `usage-exporter --help` loads every subcommand module
    from exporter.backfill.victoria import import_victoriametrics
    from exporter.cli.options import history_settings
    from exporter.progress import for_cli

    options = history_settings(site, config_path, holdback, job, instance)
    result = import_victoriametrics(timeline_dir, url, query_url=query_url, holdback=options.holdback,
                                    job=options.job, instance=options.instance, origin=options.origin,
                                    progress=for_cli(quiet=quiet, stages=2))
    click.echo(f"timeline: {result.timeline_path}  ({result.series} series)")
    click.echo(f"history:  {result.first_sample:%Y-%m-%d %H:%M} .. {result.last_sample:%Y-%m-%d %H:%M} UTC "
               f"(last sample); cut-off {result.cutoff:%Y-%m-%d %H:%M} UTC: the live exporter owns everything from there")
    extra = result.families or {}
    samples = result.samples + sum(counts["samples"] for counts in extra.values())
    click.echo(f"imported: {samples:,} samples in {result.requests} request(s) "
               f"({result.bytes_sent / 1e6:.1f} MB) to {result.url}, job={result.job!r} instance={result.instance!r}; "
               f"all counted back ({result.seconds:.1f}s)")
    if extra:
        click.echo("families: " + ", ".join(f"{name} ({counts['series']} series, {counts['samples']:,} samples)"
                                            for name, counts in extra.items()))
    click.echo("next:     scrape the live exporter into the same store with the same job/instance "
               "(vmagent or Prometheus remote_write; etc/prometheus.yml), so history and live are one series")

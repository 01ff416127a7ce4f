"""``usage-exporter generate-site``: write a synthetic Nova + Blazar site and its truth."""

from __future__ import annotations

import click

from exporter.cli.options import DateTime
from exporter.config import DEFAULT_HISTORY_START

DEFAULT_DB_URL = "sqlite:///demo/site/main.sqlite"


def _quirk_names(kind: str | None = None) -> list[str]:
    """The quirks of a site kind (edge: the edge quirks; others: the host quirks); None: every one."""
    from exporter.sitegen.edge_zun import EDGE_QUIRKS
    from exporter.sitegen.quirks import QUIRKS

    return [*(QUIRKS if kind != "edge" else ()), *(EDGE_QUIRKS if kind in ("edge", None) else ())]


@click.command("generate-site")
@click.option("--db-url", default=DEFAULT_DB_URL, show_default=True,
              help="SQLAlchemy URL. SQLite: the main file (schemas become sibling <schema>.sqlite files); "
                   "MariaDB/MySQL: one database per schema (nova, nova_api, blazar, chameleon_usage).")
@click.option("--hosts", type=click.IntRange(min=1), default=40, show_default=True,
              help="Number of hosts (--kind edge: number of devices).")
@click.option("--years", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True,
              help="Simulated history length; the snapshot ('now') is start + years.")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed (and start) -> identical site.")
@click.option("--start", type=DateTime(), default=f"{DEFAULT_HISTORY_START:%Y-%m-%d}",
              show_default=True, help="First simulated day (UTC).")
@click.option("--kind", type=click.Choice(["baremetal", "kvm", "edge"]), default="baremetal", show_default=True,
              help="Ironic bare-metal site with physical:host leases, KVM site with on-demand VMs, or CHI@Edge "
                   "site with devices, device leases and Zun containers (docs/synthetic-site.md).")
@click.option("--truth-dir", type=click.Path(file_okay=False), default=None,
              help="Where truth_spans.parquet and truth.json go [default: <sqlite dir>/truth, "
                   "else ./truth-<prefix or 'site'>].")
@click.option("--db-prefix", default="", help="Prefix for physical database names, e.g. 'demo_' -> demo_nova (SQLite: demo_nova.sqlite).")
@click.option("--no-quirk", "no_quirks", multiple=True, type=click.Choice(_quirk_names()), metavar="NAME",
              help="Turn a quirk of the site's kind off (repeatable); all are on by default. Names: "
                   + ", ".join(_quirk_names()) + " (see docs/synthetic-site.md).")
@click.option("--capability-schema", type=click.Choice(["property_id", "capability_id", "capability_name"]),
              default="property_id", show_default=True, help="Which historical Blazar capability schema to write.")
@click.option("--blazar", type=click.Choice(["chameleon", "upstream", "upstream_purged"]), default="chameleon",
              show_default=True,
              help="How Blazar stores deletes: Chameleon's fork soft-deletes; upstream hard-deletes (allocations at "
                   "lease end, deleted leases and hosts) and has no soft-delete columns; upstream_purged also "
                   "deletes ended leases.")
def command(db_url, hosts, years, seed, start, kind, truth_dir, db_prefix, no_quirks, capability_schema, blazar):
    """Simulate a site's history, write it as Nova/Blazar would store it, and write the truth.

    The generator DROPS and re-creates its tables in the target databases: never point it at
    a real OpenStack database server (use --db-prefix on a shared test server).
    """
    from exporter.config import prefixed_databases
    from exporter.db import masked
    from exporter.errors import ConfigError
    from exporter.sitegen import generate_site

    other = [name for name in no_quirks if name not in _quirk_names(kind)]
    if other:  # click's choice holds every kind's quirks: the kind is known only now
        raise ConfigError(f"--no-quirk {', '.join(other)}: not a quirk of --kind {kind} sites "
                          f"(theirs: {', '.join(_quirk_names(kind))})")
    databases = prefixed_databases(db_prefix) if db_prefix else None
    with click.progressbar(length=1, label="generating site", show_pos=True, item_show_func=lambda s: s) as bar:
        def progress(label: str, done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos, label)

        site = generate_site(db_url, hosts=hosts, years=years, seed=seed, start=start, kind=kind,
                             databases=databases, truth_dir=truth_dir, quirks={name: False for name in no_quirks},
                             progress=progress, capability_schema=capability_schema, blazar=blazar)
    click.echo(f"site ({site.kind}) {site.start:%Y-%m-%d} -> {site.end:%Y-%m-%d} written to {masked(site.url)}")
    width = max(len(name) for name in site.row_counts)
    for name, count in sorted(site.row_counts.items()):
        click.echo(f"  {name:<{width}}  {count:>10,}")
    click.echo(f"truth: {site.truth_dir / 'truth_spans.parquet'} and {site.truth_dir / 'truth.json'}")

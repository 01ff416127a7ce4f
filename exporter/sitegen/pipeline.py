"""generate_site's steps: simulate -> render -> write tables -> write truth."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

from exporter.errors import ConfigError
from exporter.sitegen import GeneratedSite, Progress, default_truth_dir, simulate, write_json
from exporter.sitegen.effects import quirk_effects
import polars as pl

from exporter.sitegen.model import BLAZAR_SOFT_DELETE_SINCE, to_dt
from exporter.sitegen.quirks import resolve_quirks
from exporter.sitegen.render import (
    Rendered,
    RenderedTable,
    render_blazar_hosts,
    render_compute_nodes,
)
from exporter.sitegen.render_control import render_audit, render_services
from exporter.sitegen.truth_conflicts import conflict_truth
from exporter.sitegen.render_activity import broken_rows, render_instances, render_leases
from exporter.sitegen.render_lifecycles import render_sizes_and_moves
from exporter.sitegen.schema import CAPABILITY_SCHEMAS, build_metadata
from exporter.sitegen.legacy import legacy_usage_cache
from exporter.sitegen.truth import node_hours, truth_spans
from exporter.sitegen.truth_leases import truth_bookings, truth_leases
from exporter.sitegen.upstream import BLAZAR_VARIANTS, as_upstream, upstream_losses
from exporter.sitegen.truth_pools import blazar_evident_since, pool_hours, truth_pools
from exporter.sitegen.render_control import disabled_by_node_type, ORPHAN_SERVICE
from exporter.sitegen.writer import write_site

FLAVOR_IDS = {"baremetal": 1, "m1.tiny": 2, "m1.small": 3, "m1.medium": 4, "m1.large": 5, "m1.xlarge": 6,
              "g1.t4": 7, "m1.2xlarge": 8}


def db_prefix(databases: dict[str, str]) -> str | None:
    """The prefix in front of the physical ``nova`` database name, if any."""
    physical = databases.get("nova", "nova")
    return physical[: -len("nova")] if physical.endswith("nova") and physical != "nova" else None


def render_world(world, quirks: frozenset[str], capability_schema: str,
                 blazar: str = "chameleon") -> tuple[Rendered, dict[str, int]]:
    """All tables except the legacy cache (rows may be one-shot iterators), plus quirk counts.

    ``blazar``: one of BLAZAR_VARIANTS (how Blazar stores deletes; see exporter.sitegen.upstream).
    """
    counts = dict(world.counts)
    rendered: Rendered = {}
    rendered.update(render_services(world, quirks))
    if blazar == "chameleon":  # the audit triggers are Chameleon's
        rendered.update(render_audit(world, quirks))
    rendered.update(render_compute_nodes(world, quirks))
    rendered.update(render_blazar_hosts(world, quirks, capability_schema))
    rendered.update(render_leases(world))
    rendered.update(render_instances(world, FLAVOR_IDS))
    rendered.update(render_sizes_and_moves(world, FLAVOR_IDS))
    for key, extra in broken_rows(world, quirks, counts).items():
        rendered[key] = RenderedTable(rendered[key].columns, itertools.chain(rendered[key].rows, extra))
    if blazar != "chameleon":
        rendered = as_upstream(rendered, variant=blazar, snapshot=world.end)
    return rendered, counts


def run_pipeline(url: str, *, hosts: int, years: float, seed: int, start: dt.datetime, kind: str,
                 databases: dict[str, str], truth_dir, quirks, progress: Progress | None,
                 capability_schema: str, site: str, blazar: str = "chameleon") -> GeneratedSite:
    if capability_schema not in CAPABILITY_SCHEMAS:
        raise ConfigError(f"capability_schema must be one of {', '.join(CAPABILITY_SCHEMAS)}")
    if blazar not in BLAZAR_VARIANTS:
        raise ConfigError(f"blazar must be one of {', '.join(BLAZAR_VARIANTS)}, not {blazar!r}")
    enabled = resolve_quirks(quirks)
    metadata = build_metadata(capability_schema, upstream_blazar=blazar != "chameleon")
    steps = ["simulate", "render", "truth", *sorted(metadata.tables), "truth.json"]
    done = [0]

    def step(label: str) -> None:
        done[0] += 1
        if progress is not None:
            progress(label, done[0], len(steps))

    world = simulate(hosts=hosts, years=years, seed=seed, start=start, kind=kind, quirks=enabled)
    step("simulate")
    rendered, counts = render_world(world, enabled, capability_schema, blazar)
    step("render")
    snapshot = to_dt(world.end)
    spans = truth_spans(world, site=site)
    cache = legacy_usage_cache(spans, snapshot=snapshot, kind=kind, seed=seed)
    rendered["chameleon_usage.node_usage_report_cache"] = RenderedTable(tuple(cache.columns), cache.rows())
    step("truth")
    row_counts = write_site(url, databases, metadata, rendered, on_table=step)
    out = Path(truth_dir) if truth_dir is not None else default_truth_dir(url, db_prefix(databases))
    out.mkdir(parents=True, exist_ok=True)
    spans.write_parquet(out / "truth_spans.parquet", statistics=False)
    truth_leases(world, site=site).write_parquet(out / "truth_leases.parquet", statistics=False)
    truth_bookings(world, site=site).write_parquet(out / "truth_bookings.parquet", statistics=False)
    keeps_deleted = blazar == "chameleon"
    pools = truth_pools(world, enabled, site=site, keeps_deleted=keeps_deleted)
    pools.with_columns(pl.from_epoch("start", time_unit="s"), pl.from_epoch("end", time_unit="s")).write_parquet(
        out / "truth_pools.parquet", statistics=False)
    hours = node_hours(spans, snapshot=snapshot)
    write_json(out / "truth.json", {
        "params": {"hosts": hosts, "years": years, "seed": seed, "start": start, "end": snapshot, "kind": kind,
                   "site": site, "capability_schema": capability_schema, "quirks": sorted(enabled),
                   "blazar": blazar},
        "row_counts": row_counts,
        "node_hours": dict(zip(hours["level"], hours["node_hours"])),
        "quirks": quirk_effects(world, enabled, counts, spans, keeps_deleted),
        "blazar": {"variant": blazar, **upstream_losses(world, variant=blazar)},
        "capabilities": {"node_type": "node_type", "gpu_count": "gpu.gpu_count", "has_gpu": "gpu.gpu"},
        "pools": pool_hours(pools),
        "blazar_history": {"soft_delete_since": to_dt(BLAZAR_SOFT_DELETE_SINCE),
                           "evident_since": to_dt(blazar_evident_since(world, enabled, keeps_deleted))},
        "conflicts": conflict_truth(world, enabled, keeps_deleted),
        "services": {"disabled_hosts_by_node_type": disabled_by_node_type(world),
                     "orphan_service_hosts": [ORPHAN_SERVICE[kind]] if "orphan_services" in enabled else []},
    })
    step("truth.json")
    return GeneratedSite(url=url, databases=dict(databases), truth_dir=out, start=start, end=snapshot, kind=kind,
                         row_counts=row_counts, quirks=enabled, blazar=blazar)

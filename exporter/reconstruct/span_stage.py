"""The spans stage: snapshot tables -> canonical spans (+ rejects), the bookings, lead times and the span audit.

Each level goes through settle -> cut at snapshot -> [merge] -> [clip into parent]:

1. hosts        nova compute_nodes ∪ blazar computehosts per hostname  -> total
2. reservable   blazar computehosts per hostname, clipped into total    -> reservable
3. committed    allocation ⋈ reservation ⋈ lease ⋈ host, into reservable -> committed / maintenance
4. occupied     instances; reserved ones clipped into their reservation's committed (or
                maintenance) window on the same host (else orphan)       -> occupied
5. stopped      stop..resume action windows, merged per instance, into occupied -> stopped
   masks        Blazar's reservable flag down (audit history, current value), into reservable,
                outside every commitment (exporter.reconstruct.masks)   -> maintenance
6. ondemand     Blazar's complete history without the host, on-demand instances, rules; into
                total, minus reservable (exporter.reconstruct.pools)     -> ondemand

Rules are in the adapters (exporter.adapters.*), in exporter.reconstruct.semantics and in
docs/semantics.md; this module only wires them and keeps the books (exporter.reconstruct.books).
The timeline, its audit and the output set follow in exporter.reconstruct.pipeline.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import polars as pl

from exporter.adapters import blazar_devices, boundary, host_resources, nova_placements, nova_services
from exporter.adapters.registry import site_tables
from exporter.columns import RECORD_LEVELS
from exporter.config import DEFAULT_MAINTENANCE_PROJECTS
from exporter.reconstruct import audit as auditing
from exporter.reconstruct import (bookings, conflicts, device_levels, devices_audit, host_levels, inference, knowledge,
                                  leadtime, manual_rules, masks, pools, semantics, span_kinds)
from exporter.reconstruct import policy as policy_module
from exporter.reconstruct.books import SpanBooks
from exporter.reconstruct.policy import Policy
from exporter.reconstruct.rulesfile import Rule
from exporter.sidethread import SideThread

ESSENTIAL_TABLES = ("nova.compute_nodes", "nova.instances")  # without them nothing can be rebuilt ...
EDGE_ESSENTIAL = "blazar.devices"  # ... unless the site is a CHI@Edge site (devices, no Nova)


@dataclass(frozen=True)
class SpanSet:
    """Canonical spans (SPAN_SCHEMA), rejected rows (REJECT_SCHEMA) and their accounting."""

    spans: pl.DataFrame
    rejected: pl.DataFrame
    audit: dict
    devices: pl.DataFrame | None = None  # an edge site's device spans (SPAN_SCHEMA); None: no device rows
    bookings: pl.DataFrame | None = None  # exporter.reconstruct.bookings.BOOKING_SCHEMA
    leadtimes: pl.DataFrame | None = None  # exporter.reconstruct.leadtime.LEADTIME_SCHEMA


def spans_from_tables(
    tables: Mapping[str, pl.LazyFrame | pl.DataFrame],
    *,
    site: str,
    snapshot_time: dt.datetime,
    maintenance_projects: Sequence[str] = DEFAULT_MAINTENANCE_PROJECTS,
    rules: Sequence[Rule] = (),
    priority: Mapping[str, tuple[str, ...]] | None = None,
    inference: str = "auto",
    blazar_complete_since: dt.datetime | str | None = None,
    device_history_complete_since: dt.datetime | str | None = None,
) -> SpanSet:
    """Every span the tables evidence, every row they reject, and the balanced books.

    ``tables``: ``{"schema.table": frame}`` (snapshot files or live DB reads). Absent tables
    are treated as empty, with a warning in the audit (no Blazar -> everything on-demand).
    ``rules`` (this site's), ``priority`` (exporter.priority) and ``inference`` (auto/on/off)
    decide how sources combine; ``blazar_complete_since`` overrides when Blazar's host history
    is complete (exporter.reconstruct.pools), ``device_history_complete_since`` when an edge site's
    devices table keeps retired devices (exporter.reconstruct.devices_audit). Raises InvariantViolation
    when rows or hours do not balance.
    """
    frames, warnings = _complete_tables(tables)
    books = SpanBooks(site=site, snapshot_time=snapshot_time)
    hosts = semantics.host_evidence(frames)
    policy, gaps = policy_module.site_policy_for(frames, hosts, rules=rules, priority=priority, inference=inference)
    history = pools.blazar_history(hosts, blazar_complete_since)
    names = hosts.get_column("hypervisor_hostname").drop_nulls().unique().sort().to_list()
    context = semantics.host_context(frames, hosts)
    # A second thread takes the work that does not wait for the main thread's levels: the instance
    # and stop windows, then the bookings and lead times, then the span audit (polars and numpy
    # release the GIL; neither chain alone keeps both cores busy). Only this thread writes to the books.
    with SideThread() as side:
        levels, segments, instances, booked_job, leadtime_job = _levels(
            books, frames, hosts, names, policy, side, site=site, context=context, snapshot_time=snapshot_time,
            maintenance_projects=maintenance_projects, complete_since=pools.complete_since(history))
        outside_total = semantics.ondemand_hours_outside_total(levels["occupied"], levels["total"],
                                                               snapshot_time=snapshot_time)
        placement_evidence = nova_placements.evidence_summary(set(tables), frames, segments)
        spans = _canonical(levels, site=site, context=context, policy=policy, snapshot_time=snapshot_time)
        # The level rows and segments are not read again: freed before the sort and the audit, which
        # held the stage's peak memory with them.
        del levels, segments
        devices = None
        if blazar_devices.present(frames):  # (before the audit: the device levels write to the books)
            device_history = devices_audit.device_history(frames, device_history_complete_since)
            devices = device_levels.device_spans(books, frames, site=site, maintenance_projects=maintenance_projects,
                                                 complete_since=device_history.complete_since)
        # The books are complete: the rejects and the span audit (which reads neither the spans' order nor
        # the columns added below) are made beside the kinds, the sort and the knowledge times.
        audit_job = side.submit(_audited, books, _counted(spans if devices is None else pl.concat([spans, devices])),
                                site=site, tables=frames, warnings=warnings + gaps)
        known = functools.partial(knowledge.with_knowledge_times, frames=frames, instances=instances,
                                  rules=policy.rules, snapshot_time=snapshot_time)
        spans = _in_span_order(span_kinds.with_kinds(spans, policy.rules, snapshot_time=snapshot_time))
        spans = known(spans)  # (a statement apart, so the unsorted frame is freed first)
        if devices is not None:
            devices = known(_in_span_order(span_kinds.with_kinds(devices, policy.rules, snapshot_time=snapshot_time)))
        every_span = spans if devices is None else pl.concat([spans, devices], how="vertical")
        # The bookings are made before the audit on the side thread: read first (no extra wait: the audit
        # job comes after them), so their failure is raised before the audit's and the checks' below, as
        # when they were made on this thread (it now comes after the kinds, sort and knowledge times:
        # raising it before them would stop the overlap)
        booked = booked_job.result()
        rejected, audit = audit_job.result()
        audit["conflicts"] = conflicts.conflict_audit(spans, rejected, books.all_clipped())
        audit["ondemand_hours_outside_total"] = outside_total
        audit["placement_evidence"] = placement_evidence
        audit["blazar_history"] = history
        audit["hypervisors"] = host_resources.site_hypervisor(  # what the site is, from its hosts (colours)
            context["kinds"].collect(), names)
        audit["services"] = nova_services.service_audit(frames)
        policy_module.policy_audit(audit, policy, books, spans, rejected)
        auditing.check_reject_reasons(rejected, books.all_clipped())
        span_kinds.check_kinds(every_span)
        auditing.check_sources(audit["sources"])
        conflicts.check_conflicts(audit["conflicts"])
        if devices is not None:
            audit["devices"] = devices_audit.device_evidence(frames, devices, rejected, history=device_history,
                                                             snapshot_time=snapshot_time)
        leadtimes = leadtime_job.result()
    return SpanSet(spans=spans, rejected=rejected, audit=audit, devices=devices, bookings=booked,
                   leadtimes=leadtimes)


def _canonical(levels: Mapping[str, pl.DataFrame], *, site: str, context: Mapping[str, pl.LazyFrame],
               policy: Policy, snapshot_time: dt.datetime) -> pl.DataFrame:
    """The canonical spans of every level, concatenated, with node types."""
    canonical = pl.collect_all(  # one query per level, run side by side
        [semantics.canonical_spans(rows, site=site, context=context) for rows in levels.values()])
    return _with_node_types(pl.concat(canonical, how="vertical"), policy, snapshot_time)


def _bookings(allocations: pl.DataFrame, *, site: str, context: Mapping[str, pl.LazyFrame], policy: Policy,
              snapshot_time: dt.datetime) -> pl.DataFrame:
    """The bookings of the allocation windows, with node types."""
    canonical = semantics.canonical_spans(bookings.booking_rows(allocations), site=site, context=context).collect()
    return bookings.bookings(_with_node_types(canonical, policy, snapshot_time))


def _with_node_types(spans: pl.DataFrame, policy: Policy, snapshot_time: dt.datetime) -> pl.DataFrame:
    """``spans`` with the operators' set_node_type (and add_host) rules applied (manual_rules.with_node_types)."""
    return manual_rules.with_node_types(spans, policy.rules, snapshot_time=snapshot_time,
                                        node_types=dict(policy.node_types))


def _counted(spans: pl.DataFrame) -> pl.DataFrame:
    """What the span audit reads of the spans that come from input rows (conflict records come from
    none). Only those columns are filtered (all 31: 0.08-0.10 s CPU on 500 x 10's 614k spans; these: 0.01 s)."""
    return spans.select(auditing.SPAN_COLUMNS).filter(~pl.col("level").is_in(RECORD_LEVELS))


def _audited(books: SpanBooks, counted: pl.DataFrame, *, site: str, tables: Mapping[str, pl.LazyFrame],
             warnings: list[str]) -> tuple[pl.DataFrame, dict]:
    """The rejected rows (sorted) and the span audit of the ``counted`` spans (in any order)."""
    rejected = books.all_rejected().with_columns(pl.lit(site).alias("site")).sort(
        "source_table", "source_id", "level", "start", nulls_last=True)
    return rejected, auditing.span_audit(books, counted, rejected, tables=tables, warnings=warnings)


def _levels(books: SpanBooks, frames: Mapping[str, pl.LazyFrame], hosts: pl.DataFrame, names: list[str],
            policy: Policy, side: SideThread, *, site: str, context: Mapping[str, pl.LazyFrame],
            snapshot_time: dt.datetime, maintenance_projects: Sequence[str], complete_since: dt.datetime | None,
            ) -> tuple[dict[str, pl.DataFrame], pl.DataFrame, pl.DataFrame, Future, Future]:
    """Spans of every stage, in order: total, reservable, committed, occupied, stopped, ondemand;
    the instances' placement segments (for the audit); the instance windows (for lead times);
    the jobs on ``side`` of the bookings and of the lease lead times (the allocation windows are
    read once, for the committed level and the bookings)."""
    # The instance windows (then the stop windows, the bookings and lead times) do not depend on the
    # host levels: ``side`` builds them meanwhile. Only this thread writes to the books.
    instance_job = side.submit(semantics.instance_windows, frames, policy.priority)
    inferred = None
    if policy.infer:
        inferred = inference.commitments(instance_job.result()[0], frames, maintenance_projects=maintenance_projects)
    total = host_levels.total_spans(books, hosts, policy, names)
    reservable = host_levels.reservable_spans(books, hosts, total, policy, inferred, names)
    allocations = host_levels.allocation_rows(frames, maintenance_projects=maintenance_projects)
    committed = host_levels.committed_spans(books, allocations, reservable, policy, inferred=inferred,
                                            host_names=names)
    instances, segments = instance_job.result()
    stop_job = side.submit(semantics.stop_windows, frames, instances)
    booked_job = side.submit(_bookings, allocations, site=site, context=context, policy=policy,
                             snapshot_time=snapshot_time)
    # (one side thread, its jobs in order: the bookings are made when this job starts; a job apart, so a
    # failure of the bookings is raised where they are read, before the audit's, and of the lead times last)
    leadtime_job = side.submit(lambda: leadtime.lease_leadtimes(frames, instances, booked_job.result(), site=site,
                                                                maintenance_projects=maintenance_projects))
    occupied = semantics.occupied_spans(books, instances, segments, committed, policy)
    stopped = semantics.stopped_spans(books, stop_job.result(), occupied, policy)
    mask = masks.mask_spans(books, frames, reservable, committed, policy)
    ondemand = pools.ondemand_spans(books, hosts, total, reservable, occupied, policy, since=complete_since,
                                    host_names=names)
    return {"total": total, "reservable": reservable, "committed": committed, "occupied": occupied,
            "stopped": stopped, "ondemand": ondemand, "mask": mask,
            "conflict": conflicts.conflict_windows(books.conflicts)}, segments, instances, booked_job, leadtime_job


def _in_span_order(spans: pl.DataFrame) -> pl.DataFrame:
    """``spans`` sorted by level, host, start, source table and source id (nulls last).

    Each key becomes integers in its order and numpy's lexsort orders them (polars' sort by several
    columns compares row-encoded keys: 1.0-1.3 s on 614k spans where this takes 0.7-0.8 s, BENCHMARKS.md
    session 10). Level, host and source table (a few hundred values at most) are the codes of an Enum
    of their sorted values, the source ids (one per row, nearly) their dense rank; a null is the code
    after the last. Level and host make one key, as do source table and id (a code times the next
    key's number of codes, plus that code): three keys to sort by instead of five (0.38 -> 0.34 s
    CPU on 500 x 10, BENCHMARKS.md session 11)."""
    def coded(column: str) -> tuple[pl.Expr, int]:
        """The column's codes (Int64, null last) and how many there are."""
        values = spans.get_column(column).unique().drop_nulls().sort()
        return pl.col(column).cast(pl.Enum(values)).to_physical().cast(pl.Int64).fill_null(values.len()), values.len() + 1
    level, _ = coded("level")
    host, hosts = coded("hypervisor_hostname")
    table, _ = coded("source_table")
    ids = spans.height + 2  # a dense rank is 1..height; null after it
    last = np.iinfo(np.int64).max
    keys = spans.select(level * hosts + host, pl.col("start").to_physical().fill_null(last),
                        table * ids + pl.col("source_id").rank("dense").cast(pl.Int64).fill_null(ids - 1))
    return spans[np.lexsort([keys.to_series(at).to_numpy() for at in reversed(range(keys.width))])]


def _complete_tables(tables: Mapping[str, pl.LazyFrame | pl.DataFrame]) -> tuple[dict[str, pl.LazyFrame], list[str]]:
    """Every declared table as a LazyFrame (absent -> empty) and a warning per absent non-optional one."""
    boundary.check_required_columns({name: frame.lazy() for name, frame in tables.items()})
    frames, warnings = {}, []
    edge = EDGE_ESSENTIAL in tables and not any(name in tables for name in ESSENTIAL_TABLES)
    for source in site_tables("edge" if edge else "baremetal"):
        frame = tables.get(source.name)
        if frame is None and not source.optional:
            effect = ("no Blazar data: no host is reservable, every instance is on-demand, and a host's other time "
                      "is the unknown pool unless blazar_complete_since says Blazar's history is complete") \
                if source.schema == "blazar" \
                else "its rows are treated as absent"
            warnings.append(f"table {source.name} is missing; {effect}")
        frames[source.name] = pl.LazyFrame() if frame is None else frame.lazy()
    return frames, warnings



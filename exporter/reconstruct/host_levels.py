"""The host levels (total, reservable, committed/maintenance): each source's rows settled, cut
at the snapshot, stripped of what exclude rules cover, then painted by the site's priority.

Per level the sources are layers (exporter.priority): the first that speaks for a host at a
time wins, lower ones fill only its silence, ``set_pool: ondemand`` rules are tombstones at
reservable. Each span records the source it won for (``source``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from exporter.engine import intervals
from exporter.reconstruct import conflicts as conflict_rules
from exporter.reconstruct import inference, manual_rules
from exporter.adapters import blazar_leases, nova_hosts
from exporter.reconstruct.policy import Policy
from exporter.reconstruct.rulesfile import RULES_SOURCE
from exporter.columns import LEVEL_COMMITTED, LEVEL_MAINTENANCE, LEVEL_RESERVABLE, LEVEL_TOTAL
from exporter.reconstruct.books import SpanBooks

HOST_KEY = ["hypervisor_hostname"]
SLOTS = ("slot_vcpus", "slot_memory_mb", "slot_disk_gb")


def settled_rows(books: SpanBooks, windows: pl.DataFrame, policy: Policy, *, level: str, detail: pl.Expr,
                 carry: Sequence[str] = ()) -> pl.DataFrame:
    """Rows that pass their rules, cut at the snapshot, minus what exclude rules cover."""
    settled = books.cut_at_snapshot(books.settled(windows, detail=detail, carry=carry))
    return excluded_rows(books, settled, policy, level=level)


def excluded_rows(books: SpanBooks, spans: pl.DataFrame, policy: Policy, *, level: str) -> pl.DataFrame:
    """``spans`` minus what the policy's exclude rules cover."""
    if not policy.rules:
        return spans
    return manual_rules.excluded(books, spans, policy.rules, level=level, node_types=dict(policy.node_types))


def painted(books: SpanBooks, settled: pl.DataFrame, order: Sequence[str], *,
            tombstones: Mapping[str, pl.DataFrame] | None = None, merge: bool,
            conflicts: Sequence[str] = ()) -> pl.DataFrame:
    """``settled``'s rows as one layer per source, painted in ``order`` per host (layers with no
    rows and no tombstones skipped; ``merge``: each layer's own overlaps merged after; the
    ``conflicts`` sources' overlaps recorded as conflicts), tagged with their source. What the
    rules layer overrides is noted per rule in the books."""
    layers = _by_source(settled)
    for name in set(layers) - set(order):  # a source the site left out of its priority list
        books.left_out(layers[name], why=f"source {name} is not in the site's priority list")
    tombstones = tombstones or {}
    names = [name for name in order if (name in layers and layers[name].height) or name in tombstones]
    frames = [layers.get(name, settled.clear()) for name in names]
    pieces = books.painted(frames, by=HOST_KEY, tombstones=[tombstones.get(name) for name in names]) if names else []
    if RULES_SOURCE in names:
        at = names.index(RULES_SOURCE)
        books.overridden_by_rules.append(manual_rules.overridden_by_rules(
            frames[at + 1:], _rule_cover(pieces[at], tombstones.get(RULES_SOURCE), frames[:at], books.snapshot_time),
            snapshot_time=books.snapshot_time))
    out = []
    for name, piece in zip(names, pieces):
        if merge:
            piece = books.merged(piece, by=HOST_KEY, conflicts=name in conflicts)
        out.append(piece.with_columns(pl.lit(name).alias("source")))
    if not out:
        return settled.clear().with_columns(pl.lit(None, dtype=pl.String).alias("source"))
    return pl.concat(out, how="vertical_relaxed")


def _rule_cover(won: pl.DataFrame, tombstone: pl.DataFrame | None, higher: Sequence[pl.DataFrame],
                snapshot_time) -> pl.DataFrame:
    """rule_id, host, start, end where the rules layer speaks: the pieces it won and its
    tombstones outside every higher layer (a site may rank rules below a database)."""
    parts = [won.select(pl.col("source_id").alias("rule_id"), *HOST_KEY, "start", "end")]  # rules: id = rule id
    if tombstone is not None:
        if higher:
            above = pl.concat([frame.select(*HOST_KEY, "start", "end") for frame in higher]).lazy()
            tombstone = intervals.clip_to_parent(tombstone.lazy(), above, by=HOST_KEY,
                                                 open_end=snapshot_time)[1].collect()
        parts.append(tombstone.select("rule_id", *HOST_KEY, "start", "end"))
    return pl.concat(parts, how="vertical_relaxed")


def total_spans(books: SpanBooks, hosts: pl.DataFrame, policy: Policy, host_names: Sequence[str]) -> pl.DataFrame:
    """Nova rows first, Blazar rows where nova is silent (by default); rules' add_host above both."""
    windows = _stacked([hosts, rule_rows(policy, LEVEL_TOTAL, host_names)])
    settled = settled_rows(books, windows, policy, level=LEVEL_TOTAL, detail=nova_hosts.host_reject_detail())
    return painted(books, settled, policy.priority["total"], merge=True)


def reservable_spans(books: SpanBooks, hosts: pl.DataFrame, total: pl.DataFrame, policy: Policy,
                     inferred: pl.DataFrame | None, host_names: Sequence[str]) -> pl.DataFrame:
    """Blazar host rows (then inference) per hostname, set_pool rules above them; clipped into total."""
    windows = [hosts.filter(pl.col("source_table") == "blazar.computehosts").with_columns(
        pl.lit(LEVEL_RESERVABLE).alias("level")), rule_rows(policy, LEVEL_RESERVABLE, host_names)]
    if inferred is not None:
        windows.append(inference.reservable_hosts(inferred))
    settled = settled_rows(books, _stacked(windows), policy, level=LEVEL_RESERVABLE,
                           detail=nova_hosts.host_reject_detail())
    tomb = manual_rules.tombstones(policy.rules, level=LEVEL_RESERVABLE, hosts=host_names,
                                  node_types=policy.node_types)
    merged = painted(books, settled, policy.priority["reservable"],
                     tombstones=None if tomb is None else {RULES_SOURCE: tomb}, merge=True,
                     conflicts=(conflict_rules.SOURCE,))
    return books.clipped_into(merged, total, by=HOST_KEY)


def allocation_rows(frames: Mapping[str, pl.LazyFrame], *, maintenance_projects: Sequence[str]) -> pl.DataFrame:
    """Every allocation with its window, level and slot size (or why not): the committed level's
    rows, and the bookings' (exporter.reconstruct.bookings), read once for both."""
    windows = blazar_leases.allocation_windows(frames, maintenance_projects=maintenance_projects)
    return blazar_leases.with_slots(windows, blazar_leases.reservation_slices(frames)).collect()


def committed_spans(books: SpanBooks, allocations: pl.DataFrame, reservable: pl.DataFrame, policy: Policy,
                    *, inferred: pl.DataFrame | None, host_names: Sequence[str]) -> pl.DataFrame:
    """Allocations (``allocation_rows``; then inference) per host, add_maintenance rules above;
    clipped into reservable."""
    parts = [allocations, rule_rows(policy, LEVEL_MAINTENANCE, host_names)]
    if inferred is not None:
        parts.append(inferred)
    settled = settled_rows(books, _stacked(parts), policy, level=LEVEL_COMMITTED,
                           detail=blazar_leases.allocation_reject_detail(), carry=SLOTS)
    merged = painted(books, settled, policy.priority["committed"], merge=False)
    return books.clipped_into(merged, reservable, by=HOST_KEY)


def _by_source(settled: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Rows per priority source, in input order (nova's archive counts as nova.compute_nodes)."""
    table = pl.col("source_table")
    tagged = settled.with_columns(
        pl.when(table == "nova.shadow_compute_nodes").then(pl.lit("nova.compute_nodes")).otherwise(table).alias("__source"))
    return {name: tagged.filter(pl.col("__source") == name).drop("__source")
            for name in tagged.get_column("__source").unique(maintain_order=True).to_list()}


def rule_rows(policy: Policy, level: str, host_names: Sequence[str]) -> pl.DataFrame | None:
    """The rules layer's raw windows at ``level`` (None when no rule speaks there)."""
    rows = manual_rules.rule_windows(policy.rules, level=level, hosts=host_names, node_types=policy.node_types)
    return rows if rows.height else None


def _stacked(parts: Sequence[pl.DataFrame | None]) -> pl.DataFrame:
    present = [part for part in parts if part is not None]
    return present[0] if len(present) == 1 else pl.concat(present, how="diagonal_relaxed")

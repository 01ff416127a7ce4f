"""Applying operators' manual rules (exporter.reconstruct.rulesfile) to a site's evidence and spans.

- ``exclude``: at every level, the matched rows lose their time inside the rule's range
  (rejected pieces, reason ``manual_rule``), right after the level's rows are settled.
- ``add_host`` / ``set_pool`` / ``add_maintenance``: the ``rules`` layer of the painter at the
  total / reservable / maintenance level (set_pool ondemand is a tombstone: "not reservable",
  and speaks at the ondemand level: positive evidence of the on-demand pool).
- ``set_node_type``: the node type of the matched hosts' spans in the range (spans split there).
Rules match on span columns; ``instance_uuid`` is an instance's entity id, and ``node_type``
is resolved to the hostnames Blazar gives that node type.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import polars as pl

from exporter.engine import intervals
from exporter.engine.sweepline import order_free_sum
from exporter.reconstruct.rulesfile import RULES_SOURCE, Rule
from exporter.columns import LEVEL_MAINTENANCE, LEVEL_ONDEMAND, LEVEL_RESERVABLE, LEVEL_TOTAL, TIME
from exporter.reconstruct.books import SpanBooks

_COLUMN = {"instance_uuid": "entity_id"}
_INSTANCE_LEVELS = ("occupied", "stopped")
_HOST = ["hypervisor_hostname"]
OVERRIDDEN_SCHEMA = {"rule_id": pl.String, "level": pl.String, "rows_overridden": pl.UInt32,
                     "hours_overridden": pl.Float64}


def match_expr(rule: Rule, columns: Sequence[str], *, level: str,
               node_types: dict[str, tuple[str, ...]] | None = None) -> pl.Expr | None:
    """The rows of a frame (``columns``) the rule's match selects; None when it cannot select any
    there (a key whose column the level lacks)."""
    conditions = []
    for key, values in rule.match:
        if key == "node_type":
            hosts = [h for v in values for h in (node_types or {}).get(v, ())]
            key, values = "hypervisor_hostname", tuple(hosts)
        if key == "instance_uuid" and level not in _INSTANCE_LEVELS:
            return None
        column = _COLUMN.get(key, key)
        if column not in columns:
            return None
        conditions.append(pl.col(column).cast(pl.String).is_in(list(values)))
    return pl.all_horizontal(conditions) if conditions else pl.lit(True)


def excluded(books: SpanBooks, settled: pl.DataFrame, rules: Sequence[Rule], *, level: str,
             node_types: dict[str, tuple[str, ...]]) -> pl.DataFrame:
    """``settled`` without what the exclude rules cover (books record the rejected pieces)."""
    for rule in rules:
        if rule.action != "exclude":
            continue
        matched = match_expr(rule, settled.columns, level=level, node_types=node_types)
        if matched is not None:
            settled = books.excluded(settled, rule_id=rule.id, matched=matched, start=rule.start, end=rule.end)
    return settled


def rule_windows(rules: Sequence[Rule], *, level: str, hosts: Sequence[str],
                 node_types: Mapping[str, tuple[str, ...]]) -> pl.DataFrame:
    """The rules layer's raw windows at ``level`` (speaking rules only), one per (rule, host).

    total: add_host; reservable: set_pool reservable; ondemand: set_pool ondemand; maintenance:
    add_maintenance, on the hosts
    the rule names (rule_hosts). Columns as an adapter's windows, plus ``rule_id``.
    """
    rows = [(rule.id, host, rule.start, rule.end) for rule in rules if _speaks_at(rule, level, tombstone=False)
            for host in rule_hosts(rule, hosts, node_types)]
    frame = pl.DataFrame(rows, schema={"rule_id": pl.String, "hypervisor_hostname": pl.String, "start": TIME,
                                       "end": TIME}, orient="row")
    return frame.with_columns(
        pl.lit(RULES_SOURCE).alias("source_table"), pl.col("rule_id").alias("source_id"),
        pl.col("hypervisor_hostname").alias("entity_id"), pl.lit(level).alias("level"),
        pl.when(pl.col("start").is_null()).then(pl.lit("null_start")).alias("rejection_reason"),
        pl.lit(None, dtype=pl.String).alias("project_id"), pl.lit(None, dtype=pl.String).alias("reservation_id"),
        pl.lit(None, dtype=pl.String).alias("lease_id"))


def tombstones(rules: Sequence[Rule], *, level: str, hosts: Sequence[str],
               node_types: Mapping[str, tuple[str, ...]]) -> pl.DataFrame | None:
    """Where a rule says a host is *not* at ``level`` (set_pool ondemand at reservable), with its rule_id."""
    rows = [(rule.id, host, rule.start or dt.datetime(1, 1, 1), rule.end) for rule in rules
            if _speaks_at(rule, level, tombstone=True) for host in rule_hosts(rule, hosts, node_types)]
    if not rows:
        return None
    return pl.DataFrame(rows, schema={"rule_id": pl.String, "hypervisor_hostname": pl.String, "start": TIME,
                                      "end": TIME}, orient="row")


def rule_hosts(rule: Rule, hosts: Sequence[str], node_types: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The hosts a host-level rule speaks for: those it names, narrowed to the node types it names
    (the hosts Blazar gives them); every known host when it names neither (a site-wide rule)."""
    chosen = rule.matched("hypervisor_hostname") or tuple(hosts)
    typed = rule.matched("node_type")
    if typed is not None:
        of_type = {host for node_type in typed for host in node_types.get(node_type, ())}
        chosen = tuple(host for host in chosen if host in of_type)
    return chosen


def overridden_by_rules(lower: Sequence[pl.DataFrame], cover: pl.DataFrame, *,
                        snapshot_time: dt.datetime) -> pl.DataFrame:
    """rule_id, level, rows_overridden, hours_overridden: the rows of lower-priority sources
    (``lower``) with span-hours inside a rule's windows (``cover``: rule_id, host, start, end —
    what the rules layer won, and its tombstones). Each rule alone: overlapping rules both count."""
    if not cover.height or not lower:
        return pl.DataFrame(schema=OVERRIDDEN_SCHEMA)
    windows = cover.select("rule_id", *_HOST, "start", "end")
    rows = pl.concat([frame.select(*_HOST, "level", "source_table", "source_id", "start", "end") for frame in lower])
    pairs = rows.join(windows.select("rule_id", *_HOST).unique(), on=_HOST)
    inside, _ = intervals.clip_to_parent(pairs.lazy(), windows.lazy(), by=["rule_id", *_HOST], open_end=snapshot_time)
    hours = intervals.hours_between("start", "end", snapshot_time=snapshot_time)
    return (inside.filter(hours > 0).group_by("rule_id", "level")
            .agg(pl.struct("source_table", "source_id").n_unique().alias("rows_overridden"),
                 order_free_sum(hours).alias("hours_overridden"))
            .collect().cast(OVERRIDDEN_SCHEMA))


def _speaks_at(rule: Rule, level: str, *, tombstone: bool) -> bool:
    if tombstone:
        return level == LEVEL_RESERVABLE and rule.action == "set_pool" and rule.value == "ondemand"
    return ((level == LEVEL_TOTAL and rule.action == "add_host")
            or (level == LEVEL_RESERVABLE and rule.action == "set_pool" and rule.value == "reservable")
            or (level == LEVEL_ONDEMAND and rule.action == "set_pool" and rule.value == "ondemand")
            or (level == LEVEL_MAINTENANCE and rule.action == "add_maintenance"))


def with_node_types(spans: pl.DataFrame, rules: Sequence[Rule], *, snapshot_time: dt.datetime,
                    node_types: dict[str, tuple[str, ...]]) -> pl.DataFrame:
    """``spans`` with set_node_type applied (matched spans split at the rule's range) and the
    rule's node type / resources on the spans add_host made."""
    for rule in rules:
        if rule.action == "add_host":
            spans = spans.with_columns(_rule_host_columns(rule))
        if rule.action != "set_node_type":
            continue
        matched = match_expr(rule, spans.columns, level="", node_types=node_types)
        if matched is None:
            continue
        hit = spans.filter(matched.fill_null(False))
        cut = pl.LazyFrame({"__r": [0], "start": [rule.start or dt.datetime(1, 1, 1)], "end": [rule.end]},
                           schema={"__r": pl.Int32, "start": TIME, "end": TIME})
        inside, outside = intervals.clip_to_parent(hit.lazy().with_columns(pl.lit(0, pl.Int32).alias("__r")), cut,
                                                   by=["__r"], open_end=snapshot_time)
        changed = inside.with_columns(pl.lit(rule.value).alias("node_type"), pl.lit(rule.id).alias("rule_id"))
        pieces = [frame.select(spans.columns).collect() for frame in (changed, outside)]
        spans = pl.concat([spans.filter(~matched.fill_null(False)), *pieces], how="vertical")
    return spans


def _rule_host_columns(rule: Rule) -> list[pl.Expr]:
    mine = (pl.col("source_table") == RULES_SOURCE) & (pl.col("source_id") == rule.id)
    values = dict(rule.resources)
    if rule.value is not None:
        values["node_type"] = rule.value
    return [pl.when(mine).then(pl.lit(value)).otherwise(pl.col(name)).alias(name) for name, value in values.items()]


def rule_table(rules: Sequence[Rule], spans: pl.DataFrame, rejected: pl.DataFrame, overridden: pl.DataFrame, *,
               snapshot_time: dt.datetime) -> list[dict]:
    """Per rule and level: rows and hours excluded, rows and hours of lower sources it overrides,
    spans and hours it added or changed (audit.json ``rules``)."""
    hours = intervals.hours_between("start", "end", snapshot_time=snapshot_time)
    cut = rejected.filter(pl.col("rule_id").is_not_null()).group_by("rule_id", "level").agg(
        pl.col("source_id").n_unique().alias("rows_excluded"), order_free_sum(pl.col("hours")).alias("hours_excluded"))
    made = spans.filter(pl.col("rule_id").is_not_null()).group_by("rule_id", "level").agg(
        pl.len().alias("spans"), order_free_sum(hours).alias("hours_added_or_changed"))
    keys = ["rule_id", "level"]
    table = (cut.join(overridden, on=keys, how="full", coalesce=True)
             .join(made, on=keys, how="full", coalesce=True).fill_null(0))
    known = {rule.id: rule for rule in rules}
    return [{**row, "action": known[row["rule_id"]].action, "confidence": known[row["rule_id"]].confidence}
            for row in table.sort(keys).to_dicts() if row["rule_id"] in known]


def unmatched(rules: Sequence[Rule], table: list[dict]) -> list[str]:
    """A warning per rule that changed nothing."""
    acted = {row["rule_id"] for row in table}
    return [f"rule {rule.id!r} ({rule.action}) matches nothing" for rule in rules if rule.id not in acted]

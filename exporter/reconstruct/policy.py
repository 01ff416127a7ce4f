"""A site's policy — its manual rules, source priority and inference — decided once per run from
the configuration and the snapshot, and its part of the audit.

The policy is built before any level (``site_policy_for``): inference runs with ``inference: on``,
or with ``auto`` when Blazar has no soft-delete columns (adapters.blazar_schema), and rules that
match a node type learn which hosts Blazar gives it. After the levels, ``policy_audit`` records
the priority, whether inference ran and the per-rule table (docs/rules.md, "Traceability").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

from exporter.adapters import blazar_hosts, blazar_schema
from exporter.priority import DEFAULT_PRIORITY
from exporter.reconstruct import manual_rules
from exporter.reconstruct.books import SpanBooks
from exporter.reconstruct.rulesfile import Rule


@dataclass(frozen=True)
class Policy:
    """How a site resolves its sources: its manual rules, priority lists and whether to infer."""

    rules: tuple[Rule, ...] = ()
    priority: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_PRIORITY))
    infer: bool = False
    node_types: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # node type -> hostnames


def site_policy_for(frames: Mapping[str, pl.LazyFrame], hosts: pl.DataFrame, *, rules: Sequence[Rule],
                    priority: Mapping[str, tuple[str, ...]] | None, inference: str) -> tuple[Policy, list[str]]:
    """The site's policy, and the warning when Blazar has no soft delete (inference then on in auto)."""
    missing = blazar_schema.missing_soft_delete({name: frame.collect_schema().names() for name, frame in frames.items()
                                                 if name in blazar_schema.SOFT_DELETE_TABLES})
    warnings = [blazar_schema.soft_delete_warning(missing)] if missing else []
    node_types: dict[str, tuple[str, ...]] = {}
    if any(rule.matched("node_type") for rule in rules):
        blazar_rows = hosts.lazy().filter(pl.col("rejection_reason").is_null()
                                          & (pl.col("source_table") == "blazar.computehosts"))
        attributes = blazar_hosts.host_attributes(blazar_rows, blazar_hosts.named_capabilities(frames)).collect()
        for node_type, group in attributes.group_by("node_type"):
            node_types[str(node_type[0])] = tuple(sorted(group.get_column("hypervisor_hostname").to_list()))
    infer = inference == "on" or (inference == "auto" and bool(missing))
    return Policy(rules=tuple(rules), priority=dict(priority or DEFAULT_PRIORITY), infer=infer,
                  node_types=node_types), warnings


def policy_audit(audit: dict, policy: Policy, books: SpanBooks, spans: pl.DataFrame, rejected: pl.DataFrame) -> None:
    """Priority, inference and the per-rule table (with a warning per rule that changed nothing)."""
    audit["priority"] = {level: list(sources) for level, sources in policy.priority.items()}
    audit["inference"] = policy.infer
    if policy.rules:
        overridden = pl.concat([pl.DataFrame(schema=manual_rules.OVERRIDDEN_SCHEMA), *books.overridden_by_rules])
        audit["rules"] = manual_rules.rule_table(policy.rules, spans, rejected, overridden,
                                                 snapshot_time=books.snapshot_time)
        audit["warnings"] = audit["warnings"] + manual_rules.unmatched(policy.rules, audit["rules"])

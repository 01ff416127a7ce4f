"""Legacy Chameleon usage cache: pre-aggregated node-hours, extracted for comparison only."""

from __future__ import annotations

from exporter.adapters.declared import SourceTable, archive_only

READS = archive_only((
    SourceTable("chameleon_usage", "node_usage_report_cache",
                ("date", "node_type", "maint_hours", "reserved_hours", "used_hours", "idle_hours",
                 "total_hours"),
                primary_key="date",
                optional=True,
                description="legacy daily node-hours per node_type (not a span source)"),
))

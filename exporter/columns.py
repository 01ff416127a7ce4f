"""The columns, dtypes and value vocabularies of spans, rejected rows and the timeline.

Conventions used everywhere (see docs/semantics.md):
- All datetimes are naive UTC, ``pl.Datetime("us")`` (OpenStack stores naive UTC).
- Intervals are half-open ``[start, end)``; ``end = null`` means still open at snapshot time.
- Quantities on spans are in source units (memory_mb, disk_gb); the timeline is in base units
  (bytes), matching the Prometheus metric families in ``exporter.metrics``.
"""

from __future__ import annotations

import polars as pl

from exporter.timetype import TIME

# --- levels: what a span asserts about a host (or a slice of it) --------------------------
LEVEL_TOTAL = "total"  # host exists
LEVEL_RESERVABLE = "reservable"  # host enrolled in Blazar
LEVEL_COMMITTED = "committed"  # host (slice) allocated to a user's lease
LEVEL_MAINTENANCE = "maintenance"  # host allocated to a lease of a maintenance project
LEVEL_OCCUPIED = "occupied"  # an instance holds the host (slice)
LEVEL_STOPPED = "stopped"  # sub-span of occupied: the instance is stopped/suspended/paused/shelved
# host evidenced outside Blazar (exporter.reconstruct.pools); total - reservable - ondemand is the unknown pool
LEVEL_ONDEMAND = "ondemand"
# A record, not a level of the leaf table: feeds no exported series (exporter.reconstruct.conflicts).
LEVEL_CONFLICT = "conflict"  # a duplicate Blazar host row's time, excluded (span_type conflict_exclusion)
RECORD_LEVELS = (LEVEL_CONFLICT,)
LEVELS = (
    LEVEL_TOTAL,
    LEVEL_RESERVABLE,
    LEVEL_ONDEMAND,
    LEVEL_COMMITTED,
    LEVEL_MAINTENANCE,
    LEVEL_OCCUPIED,
    LEVEL_STOPPED,
)

BOOKING_RESERVATION = "reservation"
BOOKING_ONDEMAND = "ondemand"
# An instance inside a maintenance lease: the host-time is already the maintenance leaf.
BOOKING_MAINTENANCE = "maintenance"

# hierarchy_status: how a span relates to its parent level after clipping.
HIERARCHY_ROOT = "root"  # top level (total): has no parent
HIERARCHY_DIRECT = "direct"  # fully inside its parent
HIERARCHY_CLIPPED = "clipped"  # trimmed to its parent; original_start/original_end keep the raw window

# --- exported leaves: mutually exclusive, sum over (pool, state) = total capacity ----------
POOL_RESERVABLE = "reservable"
POOL_ONDEMAND = "ondemand"
POOL_UNKNOWN = "unknown"  # neither pool is evidenced (docs/semantics.md, "Pools")
POOLS = (POOL_RESERVABLE, POOL_ONDEMAND, POOL_UNKNOWN)
STATES = ("available", "maintenance", "idle", "active", "stopped")
UNKNOWN_NODE_TYPE = "unknown"

# --- confidence: how sure a span is (one vocabulary for spans and operators' rules) --------
CONFIDENCES = (
    "direct",  # a record states it (a row's own times; for a rule, a ticket, change log or inventory)
    "inferred",  # derived from other evidence by a documented rule (a join, an absence; graphs, logs)
    "assumed",  # asserted without a record (configuration an operator set; a rule from memory)
)

# --- what a span is (span_type) and the evidence that created it (evidence) ---------------
# Which span gets which kind is decided in exporter.reconstruct.span_kinds; a kind not listed
# here fails the run. Each is one line here and one row in docs/semantics.md ("Span kinds").
SPAN_TYPES: dict[str, str] = {
    "nova_host": "total: the host exists (usable capacity)",
    "blazar_host": "reservable: the host is enrolled in Blazar (reservable capacity)",
    "blazar_allocation": "committed: the host (slice) is allocated to a user's lease",
    "maintenance_allocation": "maintenance: the host is allocated to a maintenance project's lease",
    "nova_instance_occupied": "occupied: an instance holds the host (slice)",
    "nova_instance_stopped": "stopped: the instance holding it is stopped, suspended, paused or shelved",
    "ondemand_host": "ondemand: the host was outside Blazar (its complete history holds no row of it, or an "
                     "on-demand instance ran on it)",
    "rule_ondemand_host": "ondemand, said by an operator's set_pool: ondemand rule",
    "maintenance_mask": "the host is flagged not reservable: its reservable time is not admittable",
    "conflict_exclusion": "a duplicate Blazar host row's time that an earlier row of the host already covers",
    "rule_host": "total, added by an operator's add_host rule",
    "rule_reservable_host": "reservable, added by an operator's set_pool: reservable rule",
    "rule_maintenance": "maintenance, added by an operator's add_maintenance rule",
    "inferred_blazar_host": "reservable, inferred: a reserved instance ran on the host",
    "inferred_allocation": "committed, inferred from reserved instances where Blazar forgot the allocation",
    "inferred_maintenance_allocation": "maintenance, inferred from reserved instances of a maintenance project",
    "blazar_device": "an edge device exists (total of device_spans)",
    "blazar_device_reservable": "an edge device is reservable",
    "blazar_device_allocation": "an edge device is allocated to a user's lease",
    "maintenance_device_allocation": "an edge device is allocated to a maintenance project's lease",
    "zun_container_occupied": "a container of the device's reservation exists",
    "zun_container_stopped": "the reservation's containers on the device are stopped",
    "device_unreservable": "an edge device is marked unreservable (a failing kubelet): maintenance",
    "inferred_device": "an edge device retired before May 2022 (no row) existed: from its first to its last "
                       "allocation",
    "inferred_device_reservable": "that retired device was reservable over the same window",
}
EVIDENCE_KINDS: dict[str, str] = {
    "nova_compute_node": "a nova.compute_nodes row (or its shadow_ archive copy)",
    "nova_service": "a nova.services row of a nova-compute service",
    "blazar_computehost": "a blazar.computehosts row",
    "blazar_computehost_audit": "an openstack_audit.audit_blazar_computehosts row (the host row's history)",
    "blazar_history_absence": "Blazar's host history is complete then (docs/semantics.md, Pools) and holds no "
                              "row of the host",
    "blazar_allocation": "a blazar.computehost_allocations row (with its reservation and lease)",
    "nova_instance": "a nova.instances row (or its shadow_ archive copy), split by its placement",
    "nova_instance_action": "a nova.instance_actions stopping action (and the action that ended it)",
    "blazar_device": "a blazar.devices row",
    "blazar_device_allocation": "a blazar.device_allocations row (with its reservation and lease)",
    "zun_container": "a zun.container row (with its reservation annotation)",
    "zun_container_action": "a zun.container_actions stopping action",
    "manual_rule": "an operator's rule (source_id is the rule id)",
    "reserved_instances": "reserved instances naming their reservation (the inference source)",
    "allocations_of_rowless_device": "blazar.device_allocations rows naming a device that has no row (retired "
                                     "before the devices table kept retired rows)",
}

# --- resources: span columns (source units) and timeline names (base units) ---------------
SPAN_RESOURCES = ("nodes", "vcpus", "memory_mb", "disk_gb", "gpus")
# timeline resource name -> (span column, factor to base unit)
TIMELINE_RESOURCES: dict[str, tuple[str, float]] = {
    "nodes": ("nodes", 1.0),
    "vcpus": ("vcpus", 1.0),
    "memory_bytes": ("memory_mb", float(1 << 20)),
    "disk_bytes": ("disk_gb", float(1 << 30)),
    "gpus": ("gpus", 1.0),
}

# --- canonical spans ------------------------------------------------------------------------
SPAN_SCHEMA: dict[str, pl.DataType] = {
    "site": pl.String(),
    "level": pl.String(),
    "source_table": pl.String(),  # "<schema>.<table>" of the row that evidences the span
    "source_id": pl.String(),  # that row's primary key, as text
    "entity_id": pl.String(),  # what the span is about: host, allocation or instance id
    "hypervisor_hostname": pl.String(),
    "node_type": pl.String(),
    "pool": pl.String(),  # reservable | ondemand (null where not applicable: total, whose unknown part is derived)
    "booking": pl.String(),  # reservation | ondemand (occupied/stopped only)
    "project_id": pl.String(),
    "lease_id": pl.String(),
    "reservation_id": pl.String(),
    "start": TIME,
    "end": TIME,  # null = still open at snapshot time
    # knowledge time (docs/semantics.md "Two time axes"): when the databases first showed the span's
    # evidence and when they stopped showing it (the snapshot time while they still do)
    "known_from": TIME,
    "known_until": TIME,
    "nodes": pl.Float64(),
    "vcpus": pl.Float64(),
    "memory_mb": pl.Float64(),
    "disk_gb": pl.Float64(),
    "gpus": pl.Float64(),
    "original_start": TIME,
    "original_end": TIME,
    "hierarchy_status": pl.String(),
    "source": pl.String(),  # the priority source whose say won this span (exporter.priority)
    "rule_id": pl.String(),  # the manual rule that added or changed this span (null: none)
    "counterpart_id": pl.String(),  # conflict: the row that keeps the time source_id's row lost (null: none)
    "span_type": pl.String(),  # what the span is: a key of SPAN_TYPES
    "evidence": pl.String(),  # the kind of evidence that created it: a key of EVIDENCE_KINDS
    "confidence": pl.String(),  # how sure it is: one of CONFIDENCES
    "hours": pl.Float64(),  # end (null: the snapshot time) - start, in hours
}

# --- rejected input rows ------------------------------------------------------------------
# The vocabulary of rejected.parquet's rejection_reason and of the audit's clipped hours: a reason
# not listed here fails the run
# (exporter.reconstruct.audit.check_reject_reasons). Adding a reason is one line here and its
# entry in docs/semantics.md ("Rejection reasons").
REJECT_REASONS: dict[str, str] = {
    "null_start": "the row has no start time",
    "invalid_time_range": "the row ends before it starts",
    "missing_fk": "a row it refers to (reservation, lease, host, instance, device) does not exist "
                  "(a container: it names no reservation)",
    "never_launched": "the instance was never launched (no launched_at)",
    "missing_host": "no hypervisor hostname (an instance: neither its row nor any placement segment names one)",
    "orphan": "a reserved instance outside every window of its reservation on its host, or a Zun container "
              "outside its reservation's committed window on a device",
    "never_effective": "the row's window is empty",
    "duplicate_entity": "an earlier row of the same identity covers all of its time, or it is the shadow_ "
                        "archive copy of a row still in the main table, or (a Zun stop) another container "
                        "of its reservation runs on the device all that time",
    "outside_parent": "none of its time lies inside its parent level",
    "after_snapshot": "it starts at or after the snapshot time",
    "manual_rule": "an operator's exclude rule covers it (rule_id names the rule)",
    "overridden": "a higher-priority source (or an operator's `set_pool: ondemand` rule) speaks for the entity then, "
                  "or the site's priority list leaves its source out (exporter.priority, docs/rules.md)",
    "implausible_time": "a time before 2000-01-01, earlier than any OpenStack (a zeroed clock, epoch 0)",
    "non_finite_inventory": "its vcpus, memory or disk is NaN or infinite",
    "shelved_offloaded": "an instance's time while shelved and offloaded (it holds no host then)",
    "under_commitment": ("maintenance-mask (flag down) or unreservable-device time while a lease held the host or "
                         "device: the lease keeps it"),
    "reservable_pool": "on-demand pool evidence for a time the host was reservable (a Blazar row, inference "
                       "or a rule says so), which outranks it",
    "shared_service": "a nova-compute service fronting several nodes or Ironic nodes: it evidences none of them "
                      "alone (compute_nodes stays the node identity)",
}

# Reasons whose hours another row or source counts: set aside, not lost. The reports never count
# them as missing (docs/semantics.md "Counted elsewhere").
COUNTED_ELSEWHERE: tuple[str, ...] = ("duplicate_entity", "overridden", "under_commitment", "reservable_pool",
                                      "shared_service")

REJECT_SCHEMA: dict[str, pl.DataType] = {
    "site": pl.String(),
    "level": pl.String(),  # level the row would have fed (null if it fed none)
    "source_table": pl.String(),
    "source_id": pl.String(),
    "rejection_reason": pl.String(),
    "rejection_detail": pl.String(),  # which join failed, original values (JSON text)
    "start": TIME,
    "end": TIME,
    "hours": pl.Float64(),  # span-hours the row would have carried (0 if unknowable)
    "rule_id": pl.String(),  # manual_rule: the rule that excluded it (a piece of the row when only part is)
}

# --- timeline -----------------------------------------------------------------------------
# Label columns repeat on every one of millions of rows: fixed vocabularies are Enums (categories
# in sorted order, so sorting by them sorts by the text), open ones (site, node type)
# Categorical. Both are dictionary-encoded in parquet and read back with the same dtypes.
POOL_DTYPE = pl.Enum(sorted(POOLS))
STATE_DTYPE = pl.Enum(sorted(STATES))
RESOURCE_DTYPE = pl.Enum(sorted(TIMELINE_RESOURCES))
LABEL_DTYPE = pl.Categorical()
TIMELINE_SCHEMA: dict[str, pl.DataType] = {
    "site": LABEL_DTYPE,
    "timestamp": TIME,  # grid point t; value is the mean over [t, t + step)
    "node_type": LABEL_DTYPE,
    "pool": POOL_DTYPE,
    "state": STATE_DTYPE,
    "resource": RESOURCE_DTYPE,  # a key of TIMELINE_RESOURCES
    "value": pl.Float64(),
}
TIMELINE_KEYS = ("site", "node_type", "pool", "state", "resource")


def empty_frame(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty frame with exactly ``schema``."""
    return pl.DataFrame(schema=schema)


def conform(frame: pl.DataFrame | pl.LazyFrame, schema: dict[str, pl.DataType]):
    """Select ``schema``'s columns in order, cast to its dtypes, adding missing ones as null."""
    present = set(frame.collect_schema().names())
    return frame.select(
        [
            (pl.col(name) if name in present else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in schema.items()
        ]
    )

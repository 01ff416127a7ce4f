"""The series contract: metric names, labels and help texts (docs/metrics.md in code).

Used by both the OpenMetrics backfill writer and the live exporter, so history and present are
the same series. Gauges are in base units; counters integrate a gauge over time (resource-seconds)
from the site's ``history_start``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from exporter.errors import TimelineError

PREFIX = "openstack_usage"
LABELS = ("site", "node_type", "pool", "state")
# Written into every backfilled sample and pinned by etc/prometheus.yml's relabel_configs, so
# backfilled and scraped samples carry identical label sets (see docs/metrics.md).
DEFAULT_JOB = "openstack-usage"
DEFAULT_INSTANCE = "openstack-usage-exporter"


@dataclass(frozen=True)
class Family:
    """One resource's gauge and counter families."""

    resource: str  # timeline resource name (exporter.columns.TIMELINE_RESOURCES key)
    gauge: str
    counter: str  # OpenMetrics family name; samples carry the ``_total`` suffix
    gauge_unit: str  # OpenMetrics UNIT of the gauge ("" when dimensionless); a suffix of its name
    help: str
    counter_unit: str = "seconds"  # the counter integrates over time: always ..._seconds

    @property
    def counter_sample(self) -> str:
        return f"{self.counter}_total"


FAMILIES: tuple[Family, ...] = (
    Family("nodes", f"{PREFIX}_nodes", f"{PREFIX}_node_seconds", "",
           "Compute nodes (KVM: fraction of a host by vCPU share)"),
    Family("vcpus", f"{PREFIX}_vcpus", f"{PREFIX}_vcpu_seconds", "", "Virtual CPUs"),
    Family("memory_bytes", f"{PREFIX}_memory_bytes", f"{PREFIX}_memory_byte_seconds", "bytes",
           "Memory in bytes"),
    Family("disk_bytes", f"{PREFIX}_disk_bytes", f"{PREFIX}_disk_byte_seconds", "bytes",
           "Local disk in bytes"),
    Family("gpus", f"{PREFIX}_gpus", f"{PREFIX}_gpu_seconds", "", "GPUs"),
)
FAMILY_BY_RESOURCE = {family.resource: family for family in FAMILIES}


# --- Series families beyond the timeline ("extra families", docs/metrics.md) ---------------------
# The timeline carries only (site, node_type, pool, state) x resource. Any other series family (the
# booked-ahead lens, lead-time summaries, devices, ...) is declared here once and travels as a
# long frame: one String column per label, ``timestamp`` (naive UTC) and ``value``. reconstruct
# writes it to <out>/families/<name>.parquet, backfill validates and writes it beside the timeline
# families, and the live exporter renders the same frame computed for `now` from cached state.

RESERVED_LABELS = ("job", "instance")  # set by backfill / the scrape, never by a producer


@dataclass(frozen=True)
class ExtraFamily:
    """One gauge or counter family with its own label set (``site`` first, always present)."""

    name: str  # metric family name (a counter's samples carry ``_total``)
    labels: tuple[str, ...]  # label names, "site" first
    help: str
    unit: str = ""  # OpenMetrics UNIT ("" when dimensionless); must be a suffix of ``name``
    kind: str = "gauge"  # "gauge" or "counter" (the frame holds the counter's value itself)

    @property
    def sample_name(self) -> str:
        return f"{self.name}_total" if self.kind == "counter" else self.name

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.labels, "timestamp", "value")


def booked_ahead_name(resource: str) -> str:
    """``openstack_usage_booked_ahead_<gauge suffix>`` of a timeline resource."""
    return f"{PREFIX}_booked_ahead_{FAMILY_BY_RESOURCE[resource].gauge[len(PREFIX) + 1:]}"


# The booked-ahead (projected) lens, docs/semantics.md "Booked ahead": at T, the mean over
# [T, T + horizon) committed by the non-maintenance leases known at T.
BOOKED_AHEAD: tuple[ExtraFamily, ...] = tuple(
    ExtraFamily(booked_ahead_name(f.resource), ("site", "node_type", "horizon"),
                f"{f.help} booked by non-maintenance leases known at the sample time: mean over the next "
                "`horizon` (1d, 7d, 30d)", unit=f.gauge_unit)
    for f in FAMILIES)

# Daily lead-time statistics of the leases created that day (docs/semantics.md "Lead times"); backfilled only.
LEAD_TIME = ExtraFamily(f"{PREFIX}_lease_lead_time_seconds", ("site", "leadtime_type", "statistic"),
                        "Lead time of the leases created on the day starting at the sample time: leadtime_type "
                        "requested (start - creation), effective (first launch - creation) or start_delay "
                        "(first launch - start); statistic p50, p90 or mean", unit="seconds")

# CHI@Edge devices (docs/semantics.md "Devices"): whole devices by hardware model (the Blazar
# machine_name capability), pool and state — the node families' leaves, for devices.
DEVICE_LABELS = ("site", "machine_name", "pool", "state")
DEVICES = ExtraFamily(f"{PREFIX}_devices", DEVICE_LABELS,
                      "CHI@Edge devices (machine_name: the hardware model, from the device's Blazar capability)")
DEVICE_SECONDS = ExtraFamily(f"{PREFIX}_device_seconds", DEVICE_LABELS,
                             "CHI@Edge device-seconds integrated from the site's history_start", unit="seconds",
                             kind="counter")
EXTRA_FAMILIES: tuple[ExtraFamily, ...] = (*BOOKED_AHEAD, LEAD_TIME, DEVICES, DEVICE_SECONDS)


def check_declarations(families: Iterable[ExtraFamily]) -> None:
    """Each declared family is well formed and its name is used once (TimelineError otherwise)."""
    taken = {name for f in FAMILIES for name in (f.gauge, f.counter)}
    for family in families:
        problem = (
            "name taken" if family.name in taken else
            f"name must start with {PREFIX}_" if not family.name.startswith(PREFIX + "_") else
            "first label must be site" if family.labels[:1] != ("site",) else
            "repeated label" if len(set(family.labels)) != len(family.labels) else
            "reserved label" if set(family.labels) & {*RESERVED_LABELS, "timestamp", "value"} else
            "kind must be gauge or counter" if family.kind not in ("gauge", "counter") else
            "unit must be a suffix of the name" if family.unit and not family.name.endswith("_" + family.unit) else
            "")
        if problem:
            raise TimelineError(f"series family {family.name!r}: {problem}")
        taken.add(family.name)


# Live only (no history): hosts whose nova-compute service is disabled now, per node type.
HOST_DISABLED = f"{PREFIX}_host_disabled"
HOST_DISABLED_LABELS = ("site", "node_type")
HOST_DISABLED_HELP = ("Hosts whose nova-compute service is disabled (no new instances are scheduled there), "
                      "per node type; absent when the site has no nova.services rows.")

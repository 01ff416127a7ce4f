"""The series contract: metric names, labels and help texts (docs/metrics.md in code).

Used by both the OpenMetrics backfill writer and the live exporter, so history and present are
the same series. Gauges are in base units; counters integrate a gauge over time (resource-seconds)
from the site's ``history_start``.
"""

from __future__ import annotations

from dataclasses import dataclass

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

"""The quirks the generator can inject: names, what they do, and their known effect on truth.

Every quirk is on by default. ``resolve_quirks`` accepts ``None`` (all on), a set/list of names
to turn ON (everything else off), or a dict ``{name: bool}`` overriding the defaults.
Simulation quirks change what happens (so truth changes with them); render quirks change only
how it is stored (truth is unchanged, reconstruction loses or must repair something).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from exporter.errors import ConfigError

# name -> (stage, what it does, known effect on reconstructable hours vs truth)
QUIRKS: dict[str, tuple[str, str, str]] = {
    "re_enrolment": (
        "simulate", "hosts retire and come back under the same hypervisor_hostname with new ids",
        "none if host identity is the hostname; the gap between enrolments is not total"),
    "ironic_zero_inventory": (
        "render", "ironic compute_nodes rows alive after Stein (2019-04) and Blazar hosts enrolled "
        "after it report vcpus = memory_mb = local_gb = 0",
        "vcpu/memory/disk-hours of hosts with no non-zero row are unrecoverable (see truth.json)"),
    "nova_hard_deleted": (
        "render", "nova.compute_nodes rows soft-deleted before 2018-01-01 are missing (purged)",
        "total hours of those enrolments survive only where a Blazar row still covers them"),
    "blazar_hard_deleted": (
        "render", "blazar.computehosts (+ capabilities) deleted before 2022-06-01 are missing",
        "reservable hours lost; their allocations dangle (missing_fk) so committed/maintenance "
        "hours are lost, and reserved instances on them become orphans"),
    "duplicate_blazar_hosts": (
        "render", "a second, overlapping computehosts row for some hosts",
        "none: counted once per hostname; each overlap is a conflict_exclusion span (truth.json conflicts)"),
    "advance_bookings": (
        "simulate", "leases created days before they start (allocations created at creation)",
        "none if the committed window starts at max(lease start, allocation created)"),
    "early_deleted_leases": (
        "simulate", "leases deleted before their end (status DELETING, soft-deleted rows)",
        "none if the window ends at lease.deleted_at"),
    "reallocations": (
        "simulate", "an allocation is soft-deleted mid-lease and a new one made on another host",
        "none if windows use allocation created_at/deleted_at"),
    "maintenance_leases": (
        "simulate", "leases in project 'maintenance'", "counted as maintenance, not committed"),
    "never_launched": (
        "simulate", "failed builds: launched_at NULL, node NULL or set; never held a host",
        "none (not in truth); a reconstructor that counts them over-counts occupied"),
    "killed_by_blazar": (
        "simulate", "instances deleted by Blazar 1-15 minutes after their lease ends",
        "truth occupied runs to the kill; reconstruction clips reserved instances to the "
        "committed window, losing those minutes (killed_hours in truth.json)"),
    "late_deleted_at": (
        "render", "terminated_at NULL and deleted_at days late; true end only in the successful "
        "compute_terminate_instance event",
        "none if the end is the first of terminated_at, deleted_at, terminate event"),
    "stop_start": (
        "simulate", "stop/start actions with Success events", "stopped sub-spans of occupied"),
    "failed_actions": (
        "simulate", "stop actions whose event result is Error (instance kept running)",
        "none if only successful events count"),
    "maintenance_flag": (
        "simulate", "Blazar's resource monitor sets computehosts.reservable = 0 on unhealthy hosts for "
        "hours to days; new leases avoid them, running leases keep them",
        "the flag's history exists only in openstack_audit (deployed 2025-06); before it, only a flag "
        "still down at the snapshot is known (lost_mask_node_hours)"),
    "orphan_services": (
        "render", "a nova-compute service row whose host has no compute node",
        "none: reported in the audit, never invented as a host"),
    "shelve_offload": (
        "simulate", "KVM: shelve, offloaded at once (Nova's default), by a later shelveOffload or not at all; "
        "some unshelved, maybe onto another host; an offloaded row has host/node NULL",
        "offloaded time is not occupied; a placement offloaded before Rocky (2018-08) names its host "
        "nowhere (event hosts are NULL), so its hours are lost (truth.json)"),
    "resize": (
        "simulate", "KVM: resize to the next bigger flavor (m1.xlarge -> m1.2xlarge, later hard-deleted "
        "from nova_api.flavors); confirmed, reverted, or unconfirmed at the snapshot; nova.migrations rows",
        "none if the size changes at compute_finish_resize and a revert restores the old one"),
    "migrations": (
        "simulate", "KVM: cold migration, live migration and evacuation with their nova.migrations rows",
        "none if the host changes when the moving compute event finishes"),
    "broken_rows": (
        "render", "a few spurious rows: NULL created_at, lease end before start, dangling ids",
        "none (not in truth); each must be rejected"),
}


# Lifecycles only a KVM site has (a bare-metal site simulates none of them).
KVM_ONLY = frozenset({"shelve_offload", "resize", "migrations"})


def resolve_quirks(quirks: Iterable[str] | Mapping[str, bool] | None) -> frozenset[str]:
    """The set of enabled quirk names (validated)."""
    if quirks is None:
        return frozenset(QUIRKS)
    if isinstance(quirks, Mapping):
        enabled = {name for name in QUIRKS if quirks.get(name, True)}
        names = set(quirks)
    else:
        enabled = set(quirks)
        names = enabled
    unknown = sorted(names - set(QUIRKS))
    if unknown:
        raise ConfigError(f"unknown quirk(s) {', '.join(unknown)}; known: {', '.join(QUIRKS)}")
    return frozenset(enabled)

"""The conflicts the written tables hold: each duplicate Blazar host row (``duplicate_blazar_hosts``)
that survives beside its enrolment's primary row overlaps it, and that overlap is the truth of the
reconstruction's ``conflict_exclusion`` spans (docs/synthetic-site.md, docs/semantics.md "Conflicts")."""

from __future__ import annotations

from exporter.sitegen.model import World, to_dt
from exporter.sitegen.truth_pools import kept


def conflict_truth(world: World, quirks: frozenset[str], keeps_deleted: bool = True) -> dict:
    """``rows``: hostname, duplicate row id, primary row id, start, end (cut at the snapshot; None
    while both rows are open) and hours; ``hours_by_host``: their sums."""
    snapshot = world.end
    rows = []
    for host in world.hosts:
        for inc in host.incarnations:
            primary = inc.primary
            if primary is None or not kept(primary, quirks, keeps_deleted):
                continue
            for row in inc.blazar:
                if not row.duplicate or not kept(row, quirks, keeps_deleted):
                    continue
                start = max(row.start, primary.start)
                end = min(snapshot if row.end is None else row.end, snapshot if primary.end is None else primary.end)
                if start < end:
                    rows.append({"hypervisor_hostname": host.hostname, "row_id": row.id, "kept_row_id": primary.id,
                                 "start": to_dt(start),
                                 "end": None if row.end is None and primary.end is None else to_dt(end),
                                 "hours": (end - start) / 3600})
    by_host: dict[str, float] = {}
    for row in rows:
        by_host[row["hypervisor_hostname"]] = by_host.get(row["hypervisor_hostname"], 0.0) + row["hours"]
    return {"rows": rows, "hours_by_host": dict(sorted(by_host.items()))}

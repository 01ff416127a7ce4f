"""Instance lifecycles: build, optional stop/start, delete — as records with their actions.

Truth conventions (docs/synthetic-site.md): an instance holds its host from ``created`` until
``end`` = the finish_time of its successful ``compute_terminate_instance`` event (equal to
``terminated_at`` when that is set). A stop/start period runs from the stop action's
start_time to the next start action's start_time (or the instance's end).
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.sitegen.model import DAY, HOUR, MINUTE, Action, Host, Instance, Rng


@dataclass(frozen=True)
class Owner:
    project_id: str
    user_id: str


@dataclass(frozen=True)
class Flavor:
    name: str
    vcpus: int
    memory_mb: int
    disk_gb: int


BAREMETAL_FLAVOR = Flavor("baremetal", 48, 131072, 200)


class Lifecycles:
    """Makes instances for one simulation; ``snapshot`` is the simulated now."""

    def __init__(self, rng: Rng, *, snapshot: int, quirks: frozenset[str], counts: dict[str, int],
                 build_seconds: tuple[int, int]) -> None:
        self.rng = rng
        self.snapshot = snapshot
        self.quirks = quirks
        self.counts = counts
        self.build_seconds = build_seconds

    def _count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def launch(self, host: Host, created: int, end: int, owner: Owner, flavor: Flavor, *,
               reservation_id: str | None, killer: Owner | None = None, stops: bool = True) -> Instance:
        """A successful build on ``host`` at ``created`` that releases it at ``end``.

        ``killer`` set means the delete was issued by Blazar (the lease owner's trust);
        ``stops=False``: no stop/start periods (a KVM lifecycle will shape the instance instead).
        """
        rng = self.rng
        launched = created + rng.between(*self.build_seconds)
        inst = Instance(rng.uuid(), owner.project_id, owner.user_id, host, True, created, launched,
                        None if end >= self.snapshot else end, reservation_id, flavor.name,
                        flavor.vcpus, flavor.memory_mb, flavor.disk_gb)
        inst.actions.append(Action("create", "compute__do_build_and_run_instance", created, launched,
                                   "Success", owner.user_id, owner.project_id))
        if killer is not None and inst.end is not None:
            inst.killed_by_blazar = True
            self._count("killed_by_blazar")
        if stops:
            self._stops(inst, launched, end, owner)
        if inst.end is not None:
            deleter = killer or owner
            inst.actions.append(Action("delete", "compute_terminate_instance", end - rng.between(3, 20),
                                       end, "Success", deleter.user_id, deleter.project_id))
            if "late_deleted_at" in self.quirks and rng.random() < 0.04:
                days = rng.between(1, 12)
                if end + days * DAY < self.snapshot:
                    inst.late_delete_days = days
                    self._count("late_deleted_at")
        return inst

    def failed_build(self, host: Host, created: int, owner: Owner, flavor: Flavor, *,
                     reservation_id: str | None) -> tuple[Instance, int]:
        """A build that never launched; returns it and when the user may retry."""
        rng = self.rng
        failed = created + rng.between(2 * MINUTE, 30 * MINUTE)
        scheduled = rng.random() < 0.5
        deleted = failed + rng.between(MINUTE, 3 * DAY)
        inst = Instance(rng.uuid(), owner.project_id, owner.user_id, host, scheduled, created, None,
                        None if deleted >= self.snapshot else deleted, reservation_id, flavor.name,
                        flavor.vcpus, flavor.memory_mb, flavor.disk_gb, failed_build=True)
        inst.actions.append(Action("create", "compute__do_build_and_run_instance", created, failed,
                                   "Error", owner.user_id, owner.project_id))
        if inst.end is not None:
            event = "compute_terminate_instance" if scheduled else ""
            inst.actions.append(Action("delete", event, deleted - 2, deleted, "Success",
                                       owner.user_id, owner.project_id))
        self._count("never_launched")
        return inst, failed + rng.between(MINUTE, 20 * MINUTE)

    def _stops(self, inst: Instance, launched: int, end: int, owner: Owner) -> None:
        rng = self.rng
        until = min(end, self.snapshot)
        if "failed_actions" in self.quirks and rng.random() < 0.02 and until - launched > 2 * HOUR:
            at = rng.between(launched + HOUR, until - HOUR)
            inst.actions.append(Action("stop", "compute_stop_instance", at, at + rng.between(5, 60), "Error",
                                       owner.user_id, owner.project_id))
            self._count("failed_actions")
        if "stop_start" not in self.quirks or until - launched < DAY or rng.random() >= 0.12:
            return
        stop = rng.between(launched + HOUR, until - HOUR)
        restart = rng.between(stop + 10 * MINUTE, until - 5 * MINUTE) if rng.random() < 0.7 else None
        inst.stops.append((stop, restart))
        inst.actions.append(Action("stop", "compute_stop_instance", stop, stop + rng.between(5, 30),
                                   "Success", owner.user_id, owner.project_id))
        if restart is not None:
            inst.actions.append(Action("start", "compute_start_instance", restart,
                                       restart + rng.between(5, 60), "Success", owner.user_id, owner.project_id))
        self._count("stop_start")

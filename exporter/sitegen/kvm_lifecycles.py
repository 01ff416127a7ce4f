"""KVM lifecycles that change what an on-demand instance occupies: shelve (offloaded at once, by
a later shelveOffload, or not at all; unshelved maybe elsewhere), resize (confirmed, reverted or
unconfirmed at the snapshot), cold migration, live migration and evacuation.

Each writes the actions, events and ``nova.migrations`` row Nova writes (event names and hosts
from nova/compute/manager.py and nova/conductor) and records the truth as placements. Truth
convention (docs/synthetic-site.md): a change takes effect when the compute event that makes it
finishes; a shelve's stopped period runs from its request to the unshelve request.
"""

from __future__ import annotations

from exporter.sitegen.instances import Flavor, Owner
from exporter.sitegen.model import DAY, HOUR, MINUTE, ROCKY, Action, Event, Host, Instance, Migration, Placement, Rng
from exporter.sitegen.site_base import live_incarnation

CONDUCTOR = "controller-01"
# Share of instances living at least a day that go through each lifecycle, and the quirk that enables it.
SHARES = (("shelve", 0.16, "shelve_offload"), ("resize", 0.06, "resize"), ("migrate", 0.04, "migrations"),
          ("live-migration", 0.05, "migrations"), ("evacuate", 0.02, "migrations"))
# Bigger than m1.xlarge: a flavor the operators later hard-deleted from nova_api.flavors.
RETIRED_FLAVOR = Flavor("m1.2xlarge", 16, 32768, 320)


class KvmLifecycles:
    """Plans one lifecycle per chosen instance on ``sim`` (a KvmSimulation), booking capacity."""

    def __init__(self, sim, rng: Rng, flavors: tuple[Flavor, ...]) -> None:
        self.sim, self.rng = sim, rng
        self.bigger = {small.name: big for small, big in zip(flavors, (*flavors[1:], RETIRED_FLAVOR))}

    def choose(self, created: int, end: int) -> str | None:
        """The lifecycle of an instance living [created, end), or None."""
        if min(end, self.sim.end) - created < DAY:
            return None
        draw, reach = self.rng.random(), 0.0
        for kind, share, quirk in SHARES:
            reach += share
            if draw < reach:
                return kind if quirk in self.sim.quirks else None
        return None

    def apply(self, kind: str, inst: Instance, owner: Owner, flavor: Flavor, end: int) -> bool:
        """Shape ``inst`` by ``kind`` and book its placements; False (nothing changed) if no host fits."""
        until = min(end, self.sim.end)
        at = self.rng.between(inst.launched + HOUR, until - 4 * HOUR)
        if kind == "shelve":
            done = self._shelve(inst, owner, flavor, at, until)
        elif kind in ("resize", "migrate"):
            done = self._resize(inst, owner, flavor, at, until, kind)
        else:
            done = self._move(inst, owner, flavor, at, kind)
        if done:
            inst.actions.sort(key=lambda action: action.start)
            self.sim._count({k: q for k, _, q in SHARES}[kind])
        return done

    def _destination(self, inst: Instance, flavor: Flavor, *, avoid: Host | None) -> Host | None:
        """A live on-demand host (not ``avoid``) alive for the rest of the instance, with room now."""
        for _ in range(6):
            host = self.rng.choice(self.sim.ondemand)
            inc = live_incarnation(host, inst.created)
            lasting = inc is not None and (inc.end is None or (inst.end is not None and inc.end >= inst.end))
            if host is not avoid and lasting and self.sim.has_room(host, inst.created, flavor.vcpus, flavor.memory_mb):
                return host
        return None

    def _event(self, name: str, start: int, host: Host | str, low: int = 2, high: int = 60) -> Event:
        service = host if isinstance(host, str) else host.service_host
        return Event(name, start, start + self.rng.between(low, high), service)

    def _action(self, name: str, at: int, owner: Owner, *events: Event) -> Action:
        return Action(name, "", at, events[-1].finish, "Success", owner.user_id, owner.project_id, events=events)

    def _place(self, inst: Instance, start: int, host: Host, flavor: Flavor, end: int | None = None,
               evidenced: bool = True) -> Placement:
        closing = inst.end if end is None else end
        return Placement(start, closing, host, flavor.name, flavor.vcpus, flavor.memory_mb, flavor.disk_gb, evidenced)

    def _shelve(self, inst: Instance, owner: Owner, flavor: Flavor, at: int, until: int) -> bool:
        origin, rng = inst.host, self.rng
        shelve = self._event("compute_shelve_instance", at + 1, origin, 20, 120)
        inst.actions.append(self._action("shelve", at, owner, shelve))
        variant, offload, last_event = rng.random(), None, shelve
        if variant < 0.7:  # Nova's default shelved_offload_time = 0: offloaded inline, no own event
            offload = shelve.finish
        elif variant < 0.9:
            asked = rng.between(shelve.finish + 10 * MINUTE, min(shelve.finish + 2 * DAY, until - 2 * HOUR))
            last_event = self._event("compute_shelve_offload_instance", asked + 1, origin, 10, 60)
            inst.actions.append(self._action("shelveOffload", asked, owner, last_event))
            offload = last_event.finish
        settled = offload or shelve.finish
        back = self._unshelve(inst, owner, flavor, settled, until, offloaded=offload is not None)
        self.sim.book(origin, offload or inst.end or self.sim.end, flavor.vcpus, flavor.memory_mb)
        inst.stops.append((at, back[0] if back else None))
        if offload is None:
            inst.vm_state = None if back else "shelved"
            return True
        first = self._place(inst, inst.created, origin, flavor, end=offload, evidenced=last_event.start >= ROCKY)
        inst.placements = [first]
        if back:
            inst.placements.append(self._place(inst, back[1], back[2], flavor))
            inst.host = back[2]
            return True
        inst.vm_state = "shelved_offloaded"
        for action in inst.actions:
            if action.action == "delete":  # an offloaded instance is deleted by the API alone
                action.event = ""
        return True

    def _unshelve(self, inst: Instance, owner: Owner, flavor: Flavor, after: int, until: int, *,
                  offloaded: bool) -> tuple[int, int, Host] | None:
        """(request time, placement start, host) of an unshelve, or None."""
        rng = self.rng
        if rng.random() >= 0.6 or until - after < 2 * HOUR:
            return None
        asked = rng.between(after + 10 * MINUTE, until - 30 * MINUTE)
        if not offloaded:  # still on its host: powered on there, nothing scheduled
            event = self._event("compute_unshelve_instance", asked + 1, inst.host, 5, 30)
            inst.actions.append(self._action("unshelve", asked, owner, event))
            inst.relaunched = event.finish
            return asked, event.finish, inst.host
        same = rng.random() < 0.5 and self.sim.has_room(inst.host, inst.created, flavor.vcpus, flavor.memory_mb)
        host = inst.host if same else self._destination(inst, flavor, avoid=None)
        if host is None:
            return None
        self.sim.book(host, inst.end or self.sim.end, flavor.vcpus, flavor.memory_mb)
        image = self._event("get_image_info", asked + 1, CONDUCTOR, 1, 3)
        schedule = self._event("schedule_instances", image.finish, CONDUCTOR, 1, 5)
        spawn = self._event("compute_unshelve_instance", schedule.finish + 1, host, 20, 180)
        inst.actions.append(self._action("unshelve", asked, owner, image, schedule, spawn))
        inst.relaunched = spawn.finish
        return asked, spawn.finish, host

    def _resize(self, inst: Instance, owner: Owner, old: Flavor, at: int, until: int, kind: str) -> bool:
        rng, origin = self.rng, inst.host
        new = self.bigger[old.name] if kind == "resize" else old
        dest = self._destination(inst, new, avoid=origin)
        if dest is None:
            return False
        conductor = self._event("conductor_migrate_server", at + 1, CONDUCTOR, 1, 3)
        prep = self._event("compute_prep_resize", conductor.finish, dest, 1, 5)
        move = self._event("compute_resize_instance", prep.finish, origin, 10, 300)
        finish = self._event("compute_finish_resize", move.finish + 1, dest, 5, 90)
        inst.actions.append(self._action(kind, at, owner, conductor, prep, move, finish))
        moved = finish.finish
        draw = rng.random()
        # No revert out of the retired flavor: once reverted, no row keeps its size (unrecoverable).
        revertible = kind == "resize" and new is not RETIRED_FLAVOR
        outcome = "finished" if inst.end is None and draw < 0.15 else \
            "reverted" if revertible and draw > 0.8 else "confirmed"
        inst.placements = [self._place(inst, inst.created, origin, old, end=moved)]
        if outcome == "finished":  # unconfirmed at the snapshot: instance_extra keeps old and new
            updated, final, inst.vm_state = moved, new, "resized"
        else:
            asked = rng.between(moved + MINUTE, min(moved + 2 * DAY, until - HOUR))
            updated, final = self._settle(inst, owner, asked, outcome, origin, dest, old, new)
        if final is new:
            inst.placements.append(self._place(inst, moved, dest, new))
        self.sim.book(origin, moved if final is new else inst.end or self.sim.end, old.vcpus, old.memory_mb)
        self.sim.book(dest, inst.end or self.sim.end, new.vcpus, new.memory_mb)
        inst.host, inst.flavor_name, inst.vcpus = (dest if final is new else origin), final.name, final.vcpus
        inst.memory_mb, inst.disk_gb, inst.relaunched = final.memory_mb, final.disk_gb, moved
        inst.migrations.append(Migration("resize" if kind == "resize" else "migration", origin, dest, old.name,
                                         new.name, outcome, at, updated))
        return True

    def _settle(self, inst: Instance, owner: Owner, asked: int, outcome: str, origin: Host, dest: Host,
                old: Flavor, new: Flavor) -> tuple[int, Flavor]:
        """Confirm or revert a finished resize at ``asked``: (migration updated_at, final flavor)."""
        if outcome == "confirmed":
            confirm = self._event("compute_confirm_resize", asked + 1, origin, 2, 30)
            inst.actions.append(self._action("confirmResize", asked, owner, confirm))
            return confirm.finish, new
        revert = self._event("compute_revert_resize", asked + 1, dest, 2, 30)
        back = self._event("compute_finish_revert_resize", revert.finish + 1, origin, 5, 90)
        inst.actions.append(self._action("revertResize", asked, owner, revert, back))
        moved = inst.placements[0].end
        inst.placements.append(self._place(inst, moved, dest, new, end=back.finish))
        inst.placements.append(self._place(inst, back.finish, origin, old))
        inst.relaunched = back.finish
        return back.finish, old

    def _move(self, inst: Instance, owner: Owner, flavor: Flavor, at: int, kind: str) -> bool:
        origin = inst.host
        dest = self._destination(inst, flavor, avoid=origin)
        if dest is None:
            return False
        if kind == "live-migration":
            events = [self._event("conductor_live_migrate_instance", at + 1, CONDUCTOR, 1, 3)]
            for name, host in (("compute_check_can_live_migrate_destination", dest),
                               ("compute_check_can_live_migrate_source", origin),
                               ("compute_pre_live_migration", dest), ("compute_live_migration", origin),
                               ("compute_post_live_migration_at_destination", dest)):
                events.append(self._event(name, events[-1].finish, host, 1, 120))
            migration_type, status = "live-migration", "completed"
        else:  # evacuate: the source host is down; the conductor rebuilds the instance elsewhere
            events = [self._event("rebuild_server", at + 1, CONDUCTOR, 1, 5)]
            events.append(self._event("compute_rebuild_instance", events[-1].finish + 1, dest, 30, 300))
            migration_type, status = "evacuation", "done"
            inst.relaunched = events[-1].finish
        inst.actions.append(self._action(kind, at, owner, *events))
        moved = events[-1].finish
        inst.placements = [self._place(inst, inst.created, origin, flavor, end=moved),
                           self._place(inst, moved, dest, flavor)]
        self.sim.book(origin, moved, flavor.vcpus, flavor.memory_mb)
        self.sim.book(dest, inst.end or self.sim.end, flavor.vcpus, flavor.memory_mb)
        inst.host = dest
        inst.migrations.append(Migration(migration_type, origin, dest, flavor.name, flavor.name, status, at, moved))
        return True

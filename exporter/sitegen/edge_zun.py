"""What Chameleon's Zun does to an edge site's containers after the fact (ChameleonCloud/zun
``chameleoncloud/xena``, ChameleonCloud/blazar ``chameleoncloud/2023.1``; docs/data-sources.md "Zun").

Edge quirks (on by default, like the host quirks; ``quirks=set()`` turns them off):
- ``zun_auto_remove``: at lease end Blazar removes the reservation's containers. On ``k8s``
  devices its k8s plugin deletes the deployments, the driver's state sync marks the container
  ``Deleted`` and, since the driver creates every container ``auto_remove``, zun-compute's
  periodic ``delete_unused_containers`` (every ~60 s) hard-deletes the row with its actions and
  events; on ``zun`` devices Blazar's zun plugin deletes them through Zun's API at lease end. A
  few deletions fail and leave the rows. Off: no ended lease's containers are removed
  (``auto_remove = 0`` and Blazar's zun plugin deletes none): the history of ended leases survives.
- ``zun_pause_kill``: stops are also ``pause``/``unpause`` and ``kill``/``start`` on ``zun``
  (Docker) devices; the k8s driver implements neither (NotImplementedError), so on ``k8s``
  devices some ``pause``/``kill`` requests fail (event ``Error``, action message ``Error``); a few
  ``stop`` requests fail on ``zun`` devices. Off: only successful ``stop``/``start``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from exporter.errors import ConfigError
from exporter.sitegen.model import MINUTE, Rng

EDGE_QUIRKS: dict[str, tuple[str, str]] = {
    "zun_auto_remove": (
        "containers of leases ended before the snapshot are hard-deleted with their actions (k8s devices: "
        "marked Deleted, gone ~1 minute later; zun devices: at lease end); 3 % of leases' deletions fail",
        "their occupied/stopped hours are unrecoverable (truth.json zun_auto_removed); the audit's "
        "committed_hours_without_container bounds them"),
    "zun_pause_kill": (
        "pause/unpause and kill/start on zun devices; failed pause/kill on k8s devices (not implemented), "
        "failed stop on zun devices",
        "none if failed actions stop nothing and pause/kill stop"),
}
K8S_HOST = "edge-k3s"  # the k8s driver writes zun-compute's CONF.host: one per k3s cluster, not the device
DELETE_FAILS = 0.03
ZUN_STOPS = (("stop", "start"), ("pause", "unpause"), ("kill", "start"))
ZUN_STOP_WEIGHTS = (0.6, 0.25, 0.15)


def resolve_edge_quirks(quirks: Iterable[str] | Mapping[str, bool] | None) -> frozenset[str]:
    """The enabled edge quirks; host quirk names are accepted (and ignored) so one argument serves both kinds."""
    from exporter.sitegen.quirks import QUIRKS

    if quirks is None:
        return frozenset(EDGE_QUIRKS)
    names = set(quirks)
    unknown = sorted(names - set(QUIRKS) - set(EDGE_QUIRKS))
    if unknown:
        raise ConfigError(f"unknown quirk(s) {', '.join(unknown)}; known for edge: {', '.join(EDGE_QUIRKS)}")
    if isinstance(quirks, Mapping):
        return frozenset(name for name in EDGE_QUIRKS if quirks.get(name, True))
    return frozenset(names & set(EDGE_QUIRKS))


def apply_zun_fates(rng: Rng, leases, snapshot: int, quirks: frozenset[str]) -> None:
    """Mark the containers Zun removes with their lease, and give stops their action kinds."""
    for lease in leases:
        if "zun_pause_kill" in quirks:
            for container in lease.containers:
                _action_kinds(rng.side(container.uuid), container, snapshot)
        if "zun_auto_remove" in quirks and lease.end <= snapshot and rng.random() >= DELETE_FAILS:
            for container in lease.containers:
                if not container.hard_deleted:
                    container.removed = _removed_at(rng, container, lease.end) < snapshot


def _removed_at(rng: Rng, container, lease_end: int) -> int:
    if container.device.driver == "zun":  # Blazar's zun plugin deletes it through Zun's API
        return lease_end + rng.between(2, 30)
    # marked Deleted at the driver's next state sync (an Error row too: its deployment is gone),
    # hard-deleted at zun-compute's next delete_unused_containers
    marked = container.updated if container.status == "Deleted" else lease_end + rng.between(30, 600)
    return marked + rng.between(1, 60)


def _action_kinds(rng: Rng, container, snapshot: int) -> None:
    k8s = container.device.driver == "k8s"
    container.stop_actions = [("stop", "start") if k8s else rng.choices(ZUN_STOPS, ZUN_STOP_WEIGHTS)[0]
                              for _ in container.stops]
    life_end = min(container.end, snapshot)
    if rng.random() < 0.2:
        at = container.created + rng.between(MINUTE, max(2 * MINUTE, life_end - container.created))
        if at < life_end:
            container.failed.append((at, rng.choice(("pause", "kill")) if k8s else "stop"))

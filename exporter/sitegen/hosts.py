"""Simulated hardware: node types, enrolment, retirement and re-enrolment of hosts."""

from __future__ import annotations

import math

from exporter.sitegen.model import (
    BLAZAR_UUID_IDS_SINCE,
    DAY,
    HOUR,
    Host,
    BlazarHostRow,
    Incarnation,
    NodeType,
    Rng,
)

BAREMETAL_TYPES = (
    NodeType("compute_haswell", 48, 131072, 250, weight=4.0),
    NodeType("compute_skylake", 48, 196608, 240, weight=3.0),
    NodeType("compute_cascadelake_r", 96, 196608, 480, weight=2.0),
    NodeType("storage", 48, 65536, 16000, weight=0.6),
    NodeType("gpu_p100", 56, 131072, 1000, gpus=2, gpu_model="P100", weight=0.6),
    NodeType("gpu_v100", 80, 196608, 240, gpus=4, gpu_model="V100", weight=0.5),
    NodeType("gpu_rtx_6000", 80, 196608, 480, gpus=1, gpu_model="RTX 6000", weight=0.4),
    NodeType("fpga", 48, 131072, 250, weight=0.2),
)

KVM_TYPES = (
    NodeType("kvm_haswell", 48, 131072, 1000, weight=2.0),
    NodeType("kvm_skylake", 64, 196608, 2000, weight=2.0),
    NodeType("kvm_gpu_t4", 64, 262144, 2000, gpus=2, gpu_model="T4", weight=0.3),
)


def _weighted(rng: Rng, types: tuple[NodeType, ...]) -> NodeType:
    return rng.choices(types, weights=[t.weight for t in types])[0]


def simulate_hosts(rng: Rng, *, count: int, start: int, end: int, kind: str,
                   quirks: frozenset[str], counts: dict[str, int]) -> list[Host]:
    """``count`` host identities with their enrolment history inside [start, end).

    70% exist from the start, the rest arrive over the years; ~30% retire, and with
    ``re_enrolment`` a third of retirees come back under the same hostname with new ids.
    """
    types = KVM_TYPES if kind == "kvm" else BAREMETAL_TYPES
    services = service_hosts(kind, count)
    hosts: list[Host] = []
    next_id = [1]
    for index in range(count):
        node_type = _weighted(rng, types)
        if kind == "kvm":
            hostname = f"compute-{index + 1:04d}.kvm.example.org"
            service = hostname.split(".")[0]
            reservable = index % 10 in (1, 4, 7)  # 30%, and both pools exist from 2 hosts up
        else:
            hostname = rng.uuid()
            service = services[index % len(services)]
            reservable = rng.random() < 0.95
        host = Host(hostname, node_type, service, uid=f"{node_type.name[:3]}{index + 1:04d}",
                    reservable=reservable, vcpus=node_type.vcpus, memory_mb=node_type.memory_mb,
                    disk_gb=node_type.disk_gb)
        first = start + rng.between(0, 2 * DAY) if rng.random() < 0.7 else rng.between(start, end - 30 * DAY)
        _enrolments(rng, host, first, end, quirks, counts, next_id)
        hosts.append(host)
    return hosts


def service_hosts(kind: str, count: int) -> list[str]:
    """nova-compute service hosts: a few ironic controllers, or one per KVM hypervisor."""
    if kind == "kvm":
        return [f"compute-{index + 1:04d}" for index in range(count)]
    return [f"nova-ironic-{index + 1:02d}" for index in range(max(1, min(4, count // 100 + 1)))]


def _enrolments(rng: Rng, host: Host, first: int, end: int, quirks: frozenset[str],
                counts: dict[str, int], next_id: list[int]) -> None:
    t0: int | None = first
    while t0 is not None and t0 < end:
        retire = t0 + rng.between(120 * DAY, 6 * 365 * DAY) if rng.random() < 0.3 else None
        if retire is not None and retire >= end:
            retire = None
        incarnation = Incarnation(next_id[0], rng.uuid(), t0, retire)
        next_id[0] += 1
        if host.incarnations:
            counts["re_enrolment"] = counts.get("re_enrolment", 0) + 1
        host.incarnations.append(incarnation)
        if host.reservable:
            _blazar_rows(rng, host, incarnation, end, quirks, counts)
        t0 = None
        if retire is not None and "re_enrolment" in quirks and rng.random() < 0.35:
            t0 = retire + rng.between(DAY, 30 * DAY)


def _blazar_rows(rng: Rng, host: Host, inc: Incarnation, end: int, quirks: frozenset[str],
                 counts: dict[str, int]) -> None:
    b_start = inc.start + rng.between(HOUR, 2 * DAY)
    b_end = None if inc.end is None else inc.end - rng.between(0, 2 * HOUR)
    if b_start >= (b_end if b_end is not None else end):
        return
    row_id = rng.uuid() if b_start >= BLAZAR_UUID_IDS_SINCE else str(inc.nova_id)
    inc.blazar.append(BlazarHostRow(row_id, b_start, b_end))
    life_end = b_end if b_end is not None else end
    if "duplicate_blazar_hosts" in quirks and rng.random() < 0.04 and life_end - b_start > 4 * DAY:
        d_start = rng.between(b_start, (b_start + life_end) // 2)
        d_end = min(life_end, d_start + rng.between(DAY, 90 * DAY))
        inc.blazar.append(BlazarHostRow(rng.uuid(), d_start, None if d_end >= end else d_end,
                                        duplicate=True))
        counts["duplicate_blazar_hosts"] = counts.get("duplicate_blazar_hosts", 0) + 1


FLAG_DOWN_EVERY = 120 * DAY  # mean time between reservable = 0 periods of one enrolled host
FLAG_DOWN_SHORTEST, FLAG_DOWN_LONGEST = 2 * HOUR, 5 * DAY


def simulate_flag_down(rng: Rng, hosts: list[Host], end: int, counts: dict[str, int]) -> None:
    """Periods when Blazar's resource monitor held each enrolled host at ``reservable = 0``.

    They lie inside the host's primary Blazar row (the flag lives on it); one still down at
    ``end`` is open (None), one outliving its row ends with it.
    """
    for host in hosts:
        for inc in host.incarnations:
            row = inc.primary
            if row is None:
                continue
            stop = row.end if row.end is not None else end
            t = row.start
            while True:
                t += HOUR + int(rng.expovariate(1 / FLAG_DOWN_EVERY))
                if t >= stop - HOUR:
                    break
                length = int(math.exp(rng.uniform(math.log(FLAG_DOWN_SHORTEST), math.log(FLAG_DOWN_LONGEST))))
                up = min(t + length, stop)
                host.flag_down.append((t, None if up >= end else up))
                counts["maintenance_flag"] = counts.get("maintenance_flag", 0) + 1
                t = up

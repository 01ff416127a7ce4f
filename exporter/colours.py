"""A fixed colour per site, shared by ``plot`` and the generated Grafana dashboards (the leaf
colours are ``exporter.plot.STATE_COLOURS``).

A site's colour is, in order: its entry in the config's ``site_colours``; for a KVM site the next
of the KVM yellows, as the paper's figures draw KVM; for an edge site (CHI@Edge) the next of the
edge greens; otherwise the next unused colour of SITE_PALETTE (the Okabe-Ito colour-blind-safe
set without its yellow), in the order the sites are configured. Sites that are not configured
(e.g. a timeline from another config) follow, sorted by name. What a site is comes from the
config (``kind:``, or ``hypervisor: kvm|ironic``) and otherwise from the data: ``detected``
(reconstruct's audit.json ``hypervisors.site``: a site is KVM when its hosts are; a site whose
outputs hold a device timeline is edge). So the colours depend on the config and the data,
never on a hash of the name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from exporter.config import Config
from exporter.errors import TimelineError
from exporter.layout import DEVICE_TIMELINE_FILE, RUN_OUT_DIR, read_audit, reconstruction_dir

# Okabe & Ito (2008) colour-blind-safe palette, yellow removed (reserved for KVM sites), then two
# darker distinct hues so up to 8 bare-metal sites never share a colour.
SITE_PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#56b4e9", "#e69f00", "#000000", "#8c564b")
KVM_PALETTE = ("#f0e442", "#c9a900", "#fff3a0")
EDGE_PALETTE = ("#009e73", "#00604a", "#7fcdb4")  # CHI@Edge sites: greens
KIND_PALETTES = {"kvm": KVM_PALETTE, "edge": EDGE_PALETTE}


def site_colours(config: Config | None, sites: Iterable[str] = (),
                 detected: Mapping[str, str] | None = None) -> dict[str, str]:
    """{site: "#rrggbb"} for every configured site, every ``site_colours`` entry and ``sites``.

    ``detected``: site -> what its outputs show (``kvm``, ``ironic``, ``mixed``, ``unknown``,
    ``edge``); a configured ``kind`` (or ``hypervisor`` other than ``auto``) overrides it.
    """
    chosen: dict[str, str] = dict(config.site_colours) if config is not None else {}
    configured = [config.site(name, resolve_env=False) for name in config.site_names] if config is not None else []
    names = [site.name for site in configured] + sorted(set(sites) - {site.name for site in configured})
    kinds = {name: kind for name, kind in (detected or {}).items() if kind in KIND_PALETTES}
    kinds.update({site.name: site.kind for site in configured if site.kind})
    for kind, palette in KIND_PALETTES.items():
        shades = iter(colour for colour in palette if colour not in chosen.values())
        for name in names:
            if name not in chosen and kinds.get(name) == kind:
                chosen[name] = next(shades, palette[-1])
    free = iter(colour for colour in SITE_PALETTE if colour not in chosen.values())
    for name in names:
        if name not in chosen:
            chosen[name] = next(free, SITE_PALETTE[len(chosen) % len(SITE_PALETTE)])
    return chosen


def detected_in(reconstructions: Iterable[str | Path]) -> dict[str, str]:
    """site -> ``hypervisors.site`` of each reconstruction's audit.json, or ``edge`` when it has a
    device timeline (dirs without an audit, or from before it recorded this, are skipped: their
    sites count as unknown)."""
    found: dict[str, str] = {}
    for path in reconstructions:
        path = Path(path)
        try:
            audit = read_audit(reconstruction_dir(path if path.is_dir() else path.parent))
        except TimelineError:
            continue
        kind = (audit.get("hypervisors") or {}).get("site")
        if (reconstruction_dir(path if path.is_dir() else path.parent) / DEVICE_TIMELINE_FILE).exists():
            kind = "edge"  # its outputs count devices (CHI@Edge)
        if audit.get("site") and kind:
            found[str(audit["site"])] = str(kind)
    return found


def detected_for(config: Config) -> dict[str, str]:
    """site -> what its newest reconstruction under ``data_dir`` (``run``/``demo`` outputs) found."""
    found: dict[str, str] = {}
    for name in config.site_names:
        audits = sorted((config.data_dir / name / RUN_OUT_DIR).glob("**/audit.json"))
        newest = max(audits, key=_snapshot_time, default=None)
        found.update(detected_in([newest.parent]) if newest is not None else {})
    return found


def _snapshot_time(path: Path) -> str:
    try:
        return str(read_audit(path.parent).get("snapshot_time") or "")
    except TimelineError:
        return ""

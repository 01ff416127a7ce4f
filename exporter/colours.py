"""A fixed colour per site, shared by ``plot`` and the generated Grafana dashboards (the leaf
colours are ``exporter.plot.STATE_COLOURS``).

A site's colour is, in order: its entry in the config's ``site_colours``; for a KVM site (config
``kind: kvm``, or ``hypervisor: kvm``) the next of the KVM yellows, as the paper's figures draw KVM;
for an edge site (``kind: edge``) the next of the edge greens; otherwise the
next unused colour of SITE_PALETTE (the Okabe-Ito colour-blind-safe set without its yellow), in
the order the sites are configured. Sites that are not configured (e.g. a timeline from another
config) follow, sorted by name. So the colours depend on the config, never on a hash of the name.
"""

from __future__ import annotations

from collections.abc import Iterable

from exporter.config import Config

# Okabe & Ito (2008) colour-blind-safe palette, yellow removed (reserved for KVM sites), then two
# darker distinct hues so up to 8 bare-metal sites never share a colour.
SITE_PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#56b4e9", "#e69f00", "#000000", "#8c564b")
KVM_PALETTE = ("#f0e442", "#c9a900", "#fff3a0")
EDGE_PALETTE = ("#009e73", "#00604a", "#7fcdb4")  # CHI@Edge sites: greens
KIND_PALETTES = {"kvm": KVM_PALETTE, "edge": EDGE_PALETTE}


def site_colours(config: Config | None, sites: Iterable[str] = ()) -> dict[str, str]:
    """{site: "#rrggbb"} for every configured site, every ``site_colours`` entry and ``sites``."""
    chosen: dict[str, str] = dict(config.site_colours) if config is not None else {}
    configured = [config.site(name, resolve_env=False) for name in config.site_names] if config is not None else []
    for kind, palette in KIND_PALETTES.items():
        shades = iter(colour for colour in palette if colour not in chosen.values())
        for site in configured:
            if site.name not in chosen and site.kind == kind:
                chosen[site.name] = next(shades, palette[-1])
    others = [site.name for site in configured] + sorted(set(sites) - {site.name for site in configured})
    free = iter(colour for colour in SITE_PALETTE if colour not in chosen.values())
    for name in others:
        if name not in chosen:
            chosen[name] = next(free, SITE_PALETTE[len(chosen) % len(SITE_PALETTE)])
    return chosen

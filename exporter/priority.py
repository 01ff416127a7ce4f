"""Source priority as data: per level, the ordered sources whose say the painter resolves.

Also per kind of placement evidence (``host``, ``size``: exporter.adapters.nova_segments): each
placement segment of an instance has one say per source over its whole time, so painting it
reduces to :func:`first_speaking`, the first source in the list that names a value.

The first source that speaks for a host at a time wins (exporter.engine.painter); a lower one keeps
only where every higher one is silent, and its lost hours are ``overridden``. ``rules`` are
operators' rules (exporter.reconstruct.manual_rules), ``inference`` the gap filler (exporter.reconstruct.inference).
A site may reorder or drop sources in ``etc/sites.yaml`` (``priority:``). Inference runs when
``inference: on``, or with ``auto`` (the default) when Blazar has no soft-delete columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from exporter.errors import ConfigError

# level -> sources, highest first; the keys name the levels a source list governs
DEFAULT_PRIORITY: dict[str, tuple[str, ...]] = {
    "total": ("rules", "nova.compute_nodes", "nova.services", "blazar.computehosts"),
    "reservable": ("rules", "blazar.computehosts", "inference"),
    "committed": ("rules", "blazar.computehost_allocations", "inference"),  # and maintenance
    # positive evidence of the on-demand pool: a rule, Blazar's complete history without the
    # host (exporter.reconstruct.pools), an on-demand instance on it
    "ondemand": ("rules", "blazar.computehosts", "nova.instances"),
    # an instance's placement segments (docs/semantics.md, "occupied: placement segments")
    "host": ("nova.instances.node", "nova.migrations", "nova.instance_actions_events.host"),
    "size": ("nova.instance_extra.flavor", "nova_api.flavors", "nova.instances"),
}
INFERENCE_MODES = ("auto", "on", "off")


def site_priority(raw: object, where: str) -> dict[str, tuple[str, ...]]:
    """The priority lists of a site: the defaults with the levels ``raw`` gives replaced."""
    if raw is None:
        return dict(DEFAULT_PRIORITY)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping of level -> list of sources")
    out = dict(DEFAULT_PRIORITY)
    for level, sources in raw.items():
        if level not in DEFAULT_PRIORITY:
            raise ConfigError(f"{where}: unknown level or evidence {level!r} (known: {', '.join(DEFAULT_PRIORITY)})")
        names = [sources] if isinstance(sources, str) else list(sources or [])
        unknown = sorted(set(map(str, names)) - set(DEFAULT_PRIORITY[level]))
        if unknown or len(set(names)) != len(names) or not names:
            raise ConfigError(f"{where}.{level}: sources must be distinct names from "
                              f"{', '.join(DEFAULT_PRIORITY[level])}" + (f" (unknown: {', '.join(unknown)})"
                                                                        if unknown else ""))
        out[str(level)] = tuple(map(str, names))
    return out


def first_speaking(candidates: Mapping[str, object], order: Sequence[str]) -> tuple[object, str | None]:
    """(value, source) of the first source in ``order`` whose candidate is not None; (None, None)."""
    for source in order:
        value = candidates.get(source)
        if value is not None:
            return value, source
    return None, None


def inference_mode(raw: object, where: str) -> str:
    value = {True: "on", False: "off", None: "auto"}.get(raw, raw) if isinstance(raw, (bool, type(None))) else raw
    if value not in INFERENCE_MODES:
        raise ConfigError(f"{where} must be one of {', '.join(INFERENCE_MODES)}, not {raw!r}")
    return str(value)

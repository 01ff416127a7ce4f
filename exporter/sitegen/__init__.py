"""Synthetic Nova + Blazar site: simulate what happened, render it as the services store it,
write the truth beside it. Entry point: :func:`generate_site`. See docs/synthetic-site.md.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from exporter.config import DEFAULT_HISTORY_START
from exporter.db import is_sqlite
from exporter.errors import ConfigError
from exporter.sitegen.model import Rng, World, ts
from exporter.sitegen.quirks import QUIRKS, resolve_quirks
from exporter.sitegen.schema import CAPABILITY_SCHEMAS

# a generated site starts where a site without history_start does, so the default config covers it
DEFAULT_START = DEFAULT_HISTORY_START
KINDS = ("baremetal", "kvm", "edge")  # edge: CHI@Edge devices and containers (hosts = devices)

__all__ = ["CAPABILITY_SCHEMAS", "DEFAULT_START", "GeneratedSite", "KINDS", "QUIRKS", "add_years", "default_truth_dir",
           "generate_site", "simulate"]

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class GeneratedSite:
    """What :func:`generate_site` wrote. ``end`` is the simulated now (the snapshot moment)."""

    url: str
    databases: dict[str, str]
    truth_dir: Path
    start: dt.datetime
    end: dt.datetime
    kind: str
    row_counts: dict[str, int] = field(default_factory=dict)
    quirks: frozenset[str] = frozenset()
    blazar: str = "chameleon"


def default_truth_dir(url: str, db_prefix: str | None = None) -> Path:
    """``<dir of the main SQLite file>/truth``, else ``./truth-<prefix or 'site'>``."""
    if is_sqlite(url):
        return Path(make_url(url).database or ".").resolve().parent / "truth"
    return Path(f"truth-{(db_prefix or 'site').rstrip('_')}")


def add_years(start: dt.datetime, years: float) -> dt.datetime:
    """``start`` plus whole calendar years (29 Feb -> 28 Feb), fractions as 365-day years."""
    whole = int(years)
    try:
        moved = start.replace(year=start.year + whole)
    except ValueError:
        moved = start.replace(year=start.year + whole, day=28)
    return moved + dt.timedelta(days=round((years - whole) * 365, 6))


def simulate(*, hosts: int, years: float, seed: int, start: dt.datetime | None = None, kind: str = "baremetal",
             quirks: Iterable[str] | Mapping[str, bool] | None = None) -> World:
    """What really happened (no database involved); deterministic in its arguments."""
    if kind not in KINDS or kind == "edge":
        raise ConfigError(f"kind must be one of {', '.join(k for k in KINDS if k != 'edge')}, not {kind!r} "
                          "(an edge site is simulated by generate_site)")
    if hosts < 1 or years <= 0:
        raise ConfigError("hosts must be >= 1 and years > 0")
    enabled = resolve_quirks(quirks)
    begin = start or DEFAULT_START
    rng = Rng(f"{seed}:{kind}:{hosts}:{years}:{begin.isoformat()}")
    finish = add_years(begin, years)
    if kind == "kvm":
        from exporter.sitegen.kvm import KvmSimulation as Simulation
    else:
        from exporter.sitegen.baremetal import BaremetalSimulation as Simulation
    return Simulation(rng, hosts=hosts, start=ts(begin), end=ts(finish), quirks=enabled).run()


def generate_site(url: str, *, hosts: int, years: float, seed: int, start: dt.datetime | None = None,
                  kind: str = "baremetal", databases: Mapping[str, str] | None = None,
                  truth_dir: str | Path | None = None,
                  quirks: Iterable[str] | Mapping[str, bool] | None = None,
                  progress: Progress | None = None, capability_schema: str = "property_id",
                  site: str = "synthetic", blazar: str = "chameleon") -> GeneratedSite:
    """Simulate a site, write its tables into ``url`` and its truth into ``truth_dir``.

    ``databases`` maps logical schemas to physical names (MariaDB) / file stems (SQLite).
    ``quirks``: None = all on; a set = exactly those on; a dict = overrides (edge: the edge quirks of
    exporter.sitegen.edge_zun, host quirk names ignored). ``progress`` is
    called as ``progress(step_label, steps_done, steps_total)``. ``capability_schema`` picks the
    Blazar capability name schema (``property_id``, ``capability_id`` or ``capability_name``);
    ``site`` is written into the truth spans' ``site`` column; ``blazar`` picks how Blazar
    stores deletes (``chameleon`` soft deletes, ``upstream`` / ``upstream_purged`` hard deletes
    without soft-delete columns: exporter.sitegen.upstream). Existing generator tables are
    dropped and re-created. Deterministic: same arguments -> identical tables and truth.
    Raises ConfigError for bad arguments, DatabaseError when the database refuses.
    """
    if kind == "edge":
        from exporter.sitegen.edge_pipeline import run_edge_pipeline
        from exporter.sitegen.pipeline import db_prefix

        return run_edge_pipeline(url, devices=hosts, years=years, seed=seed, start=start or DEFAULT_START,
                                 databases=dict(databases or {}), truth_dir=truth_dir, progress=progress,
                                 capability_schema=capability_schema, site=site,
                                 prefix=db_prefix(dict(databases or {})), quirks=quirks)
    from exporter.sitegen.pipeline import run_pipeline

    return run_pipeline(url, hosts=hosts, years=years, seed=seed, start=start or DEFAULT_START, kind=kind,
                        databases=dict(databases or {}), truth_dir=truth_dir, quirks=quirks, progress=progress,
                        capability_schema=capability_schema, site=site, blazar=blazar)


def write_json(path: Path, payload: object) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")

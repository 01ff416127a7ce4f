"""generate_site for ``kind="edge"``: simulate devices, leases and containers -> render -> write -> truth.

The site has Blazar's database (its host tables empty) and Zun's, and no Nova (an edge site runs
none); the device, lease and Zun tables are filled; the truth directory gets ``truth_spans.parquet`` (physical truth) and
``truth.json`` with device-hours per level: true, recoverable, and the unrecoverable parts.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from exporter.errors import ConfigError
from exporter.sitegen import GeneratedSite, Progress, add_years, default_truth_dir, write_json
from exporter.sitegen.edge import DEVICE_SOFT_DELETE_SINCE, simulate_edge
from exporter.sitegen.edge_schema import DEVICE_CAPABILITY_SCHEMAS, edge_metadata
from exporter.sitegen.edge_zun import resolve_edge_quirks
from exporter.sitegen.edge_truth import edge_hours, edge_truth_spans, retired_devices
from exporter.sitegen.model import Rng, to_dt, ts
from exporter.sitegen.render_edge import CAPABILITIES, render_edge
from exporter.sitegen.writer import write_site


def run_edge_pipeline(url: str, *, devices: int, years: float, seed: int, start: dt.datetime,
                      databases: dict[str, str], truth_dir, progress: Progress | None, capability_schema: str,
                      site: str, prefix: str | None, quirks=None) -> GeneratedSite:
    if capability_schema not in DEVICE_CAPABILITY_SCHEMAS:
        raise ConfigError(f"an edge site's device capabilities use {' or '.join(DEVICE_CAPABILITY_SCHEMAS)}, "
                          f"not {capability_schema!r}")
    if devices < 1 or years <= 0:
        raise ConfigError("devices must be >= 1 and years > 0")
    enabled = resolve_edge_quirks(quirks)
    metadata = edge_metadata(capability_schema)
    steps = ["simulate", "render", *sorted(metadata.tables), "truth"]
    done = [0]

    def step(label: str) -> None:
        done[0] += 1
        if progress is not None:
            progress(label, done[0], len(steps))

    rng = Rng(f"{seed}:edge:{devices}:{years}:{start.isoformat()}")
    world = simulate_edge(rng, devices=devices, start=ts(start), end=ts(add_years(start, years)),
                         quirks=enabled)
    step("simulate")
    rendered = render_edge(world, capability_schema, enabled)
    step("render")
    row_counts = write_site(url, databases, metadata, rendered, on_table=step)
    out = Path(truth_dir) if truth_dir is not None else default_truth_dir(url, prefix)
    out.mkdir(parents=True, exist_ok=True)
    edge_truth_spans(world, site=site).write_parquet(out / "truth_spans.parquet", statistics=False)
    snapshot = to_dt(world.end)
    write_json(out / "truth.json", {
        "params": {"devices": devices, "years": years, "seed": seed, "start": start, "end": snapshot, "kind": "edge",
                   "site": site, "capability_schema": capability_schema, "quirks": sorted(enabled)},
        "row_counts": row_counts,
        **edge_hours(world),
        "capabilities": {"hardware_model": "machine_name", "all": list(CAPABILITIES)},
        "device_history": {"soft_delete_since": to_dt(DEVICE_SOFT_DELETE_SINCE),
                           "retired_before_soft_delete": retired_devices(world)},
    })
    step("truth")
    return GeneratedSite(url=url, databases=dict(databases), truth_dir=out, start=start, end=snapshot, kind="edge",
                         row_counts=row_counts)

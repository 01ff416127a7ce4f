"""Measure what the reconstruction recovers on an upstream-Blazar site (no soft delete).

Usage::

    .venv/bin/python bench/bench_upstream_blazar.py [--workdir /tmp/upstream-site] [--hosts 40]
        [--years 2] [--seed 7] [--kind baremetal] [--blazar upstream_purged]

Generates the site with ``--blazar`` (exporter.sitegen.upstream), extracts and reconstructs it,
and prints node-hours per level (truth vs reconstructed) plus, from truth.json, the committed
hours upstream deleted and the part of them the reserved instances prove. The numbers go to
BENCHMARKS.md ("Upstream Blazar: what inference recovers").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl


def node_hours(spans: pl.DataFrame, *, end: dt.datetime) -> dict[str, float]:
    """Node-hours per level of ``spans`` (open ends closed at ``end``)."""
    hours = (pl.col("end").fill_null(pl.lit(end)) - pl.col("start")).dt.total_seconds(fractional=True) / 3600
    totals = spans.group_by("level").agg((hours * pl.col("nodes").fill_null(0.0)).sum().alias("h"))
    return dict(zip(totals["level"], totals["h"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/upstream-site"))
    parser.add_argument("--hosts", type=int, default=40)
    parser.add_argument("--years", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", default="2023-01-01")
    parser.add_argument("--kind", default="baremetal", choices=("baremetal", "kvm"))
    parser.add_argument("--blazar", default="upstream_purged", choices=("chameleon", "upstream", "upstream_purged"))
    args = parser.parse_args()

    from exporter.config import SiteConfig
    from exporter.extract.copy import extract_snapshot
    from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_snapshot
    from exporter.sitegen import generate_site

    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    start = dt.datetime.fromisoformat(args.start)
    site = generate_site(f"sqlite:///{args.workdir}/site.sqlite", hosts=args.hosts, years=args.years,
                         seed=args.seed, start=start, kind=args.kind, truth_dir=args.workdir / "truth",
                         blazar=args.blazar)
    config = SiteConfig(name="upstream", display_name="upstream", db_url=site.url, databases=site.databases)
    snapshot = extract_snapshot(config, args.workdir / "snapshots", snapshot_id="s").snapshot_dir
    rec = reconstruct_snapshot(snapshot, ReconstructOptions(site="upstream", start=start, snapshot_time=site.end))
    truth = json.loads((site.truth_dir / "truth.json").read_text())
    rebuilt = node_hours(rec.spans, end=site.end)
    report = {"params": vars(args) | {"workdir": str(args.workdir)}, "warnings": rec.audit.get("warnings", []),
              "truth": truth["node_hours"], "reconstructed": rebuilt, "blazar": truth["blazar"]}
    for level in ("committed", "maintenance", "occupied"):
        true = truth["node_hours"].get(level, 0.0)
        report[f"{level}_fraction"] = round(rebuilt.get(level, 0.0) / true, 4) if true else None
    gone, proven = truth["blazar"]["gone_committed_node_hours"], truth["blazar"]["provable_committed_node_hours"]
    inferred = node_hours(rec.spans.filter(pl.col("source") == "inference"), end=site.end)
    report["inferred"] = inferred
    report["committed_inferred_of_gone"] = round(inferred.get("committed", 0.0) / gone, 4) if gone else None
    report["committed_provable_of_gone"] = round(proven / gone, 4) if gone else None
    report["committed_inferred_over_provable"] = round(inferred.get("committed", 0.0) / proven, 4) if proven else None
    print(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()

"""``demo``: the whole job on an embedded default — three synthetic sites in SQLite.

Generates a bare-metal site, a KVM site and a CHI@Edge site (exporter.sitegen) ending today,
writes a sites file for them, runs extract -> reconstruct -> backfill for each
(exporter.run.run_site, the same code ``usage-exporter run`` uses), and compares the reconstructed
node-hours (edge: device-hours) per level with the generator's truth, so the demo also shows how
much the reconstruction recovers. For the edge site the comparison is with the truth the
databases can still tell (``device_hours_recoverable``), beside the true hours.

The bare-metal site also gets a small commented rules file (docs/rules.md): one ``exclude`` rule
for one node over a few weeks. The comparison shows its effect on the truth in a column of its
own and compares the reconstruction with the truth *with* that effect, so the rule is visible
and the difference still measures only the reconstruction.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import yaml

from exporter.config import load_config
from exporter.demo_truth import DemoRule, devices_versus_truth, levels_versus_truth, node_hours, pools_versus_truth
from exporter.layout import read_audit
from exporter.timeutil import utc_now
from exporter.progress import SILENT, Progress
from exporter.run import RunResult, run_site
from exporter.sitegen import GeneratedSite, add_years, generate_site


@dataclass(frozen=True)
class DemoSite:
    name: str
    display_name: str
    kind: str
    hosts: int
    seed_offset: int


DEMO_SITES = (
    DemoSite("demo-chi", "Demo CHI (bare metal)", "baremetal", hosts=40, seed_offset=0),
    DemoSite("demo-kvm", "Demo KVM", "kvm", hosts=12, seed_offset=1),
    DemoSite("demo-edge", "Demo CHI@Edge", "edge", hosts=10, seed_offset=2),  # hosts = devices
)


RULED_SITE = "demo-chi"  # the demo site that ships a rules file
RULES_NAME = "rules.yaml"  # next to the demo's sites.yaml
_RULES_TEXT = """\
# Written by `usage-exporter demo`: operators' manual rules for the demo sites (docs/rules.md).
# What the databases do not know goes here as data. Try a change before a run with
#   usage-exporter rules check --site {site} --config {config}
# which prints, per rule, the rows and hours it would change, and writes nothing.
rules:
  # A node was pulled from its rack for a firmware recall: for these weeks its evidence (the host,
  # its reservations, the instances on it) must not count. The removed pieces are in
  # rejected.parquet (rejection_reason manual_rule, rule_id {id}); audit.json "rules" counts them.
  # The demo prints this rule's effect on the truth per level, and compares with truth + effect.
  - id: {id}
    site: {site}
    match:
      hypervisor_hostname: {host}
    from: {start:%Y-%m-%d}
    to: {end:%Y-%m-%d}
    action: exclude
    confidence: direct   # a record states it (the ticket); see docs/semantics.md "Span kinds"
    provenance:
      author: usage-exporter demo
      date: {end:%Y-%m-%d}
      reason: node pulled for a firmware recall, back in service after the fix
      reference: https://tickets.example.org/DEMO-1
"""


@dataclass(frozen=True)
class DemoSiteResult:
    site: DemoSite
    generated: GeneratedSite
    run: RunResult
    # level, truth, rules (their effect on truth; edge: what the databases lost), reconstructed, difference_pct
    versus_truth: pl.DataFrame
    rule: DemoRule | None = None
    # pool, truth, decidable (by the data), rules (effect on decidable), reconstructed, difference_pct
    pools: pl.DataFrame | None = None


@dataclass(frozen=True)
class DemoResult:
    out_dir: Path
    config_path: Path
    sites: tuple[DemoSiteResult, ...]


def demo_start(today: dt.date, years: float) -> dt.datetime:
    """History starts ``years`` before today's midnight (UTC), so the demo ends at the present."""
    midnight = dt.datetime(today.year, today.month, today.day)
    return add_years(midnight, -years) if years == int(years) else midnight - dt.timedelta(days=365 * years)


def write_demo_config(out_dir: Path, start: dt.datetime, sites=DEMO_SITES) -> Path:
    """A sites file for the demo sites (SQLite under ``out_dir/sites``); returns its path."""
    document = {
        "data_dir": str((out_dir / "data").resolve()),
        "defaults": {"history_start": start.isoformat(), "maintenance_projects": ["maintenance"],
                     "refresh_interval": 60, "live_holdback_hours": 3},
        "sites": {site.name: {"display_name": site.display_name, "db_url": _sqlite_url(out_dir, site),
                              "hypervisor": "kvm" if site.kind == "kvm" else "ironic", "kind": site.kind,
                              **({"rules": RULES_NAME} if site.name == RULED_SITE else {})}
                  for site in sites},
    }
    path = out_dir / "sites.yaml"
    path.write_text("# Written by `usage-exporter demo`.\n" + yaml.safe_dump(document, sort_keys=True))
    return path


def run_demo(out_dir: Path, *, years: float = 2, seed: int = 7, start: dt.datetime | None = None,
             blocks: bool = True, promtool: str | None = None, progress: Progress | None = None) -> DemoResult:
    """Generate the demo sites, run the pipeline on each, and compare with the truth."""
    progress = progress or SILENT
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = start or demo_start(utc_now().date(), years)
    config_path = write_demo_config(out_dir, start)
    config = load_config(config_path)
    results = []
    for site in DEMO_SITES:
        with progress.stage(f"{site.name}: generate ({site.kind}, {site.hosts} hosts, {years:g} years)"):
            generated = generate_site(_sqlite_url(out_dir, site), hosts=site.hosts, years=years,
                                      seed=seed + site.seed_offset, start=start, kind=site.kind)
        rule = write_demo_rules(config_path, generated) if site.name == RULED_SITE else None
        # The databases describe the moment the simulation ends, not the moment we extract them.
        run = run_site(config, site.name, blocks=blocks, promtool=promtool, progress=progress,
                       out_dir=out_dir / "data" / site.name / "out", snapshot_time=generated.end,
                       now=max(generated.end, utc_now()))
        window = {"start": config.site(site.name).history_start, "end": generated.end, "open_end": generated.end}
        if site.kind == "edge":  # device-hours against the recoverable truth; every device is reservable
            results.append(DemoSiteResult(site, generated, run, devices_versus_truth(generated, run, window)))
            continue
        results.append(DemoSiteResult(site, generated, run, levels_versus_truth(generated, run, rule, window), rule,
                                      pools_versus_truth(generated, run, rule, window)))
    return DemoResult(out_dir=out_dir, config_path=config_path, sites=tuple(results))


def write_demo_rules(config_path: Path, generated: GeneratedSite) -> DemoRule:
    """The demo's rules file next to ``config_path``: exclude one node for three weeks mid-history.

    The node is, among those the truth shows for the whole range, the one most reservable and
    then most occupied in it (so the rule's effect reaches every level); ties by name.
    """
    length = min(dt.timedelta(days=21), (generated.end - generated.start) * 0.15)
    start = _midnight(generated.start + (generated.end - generated.start) * 0.4)
    end = max(_midnight(start + length), start + dt.timedelta(days=1))
    truth = pl.read_parquet(generated.truth_dir / "truth_spans.parquet")
    window = {"start": start, "end": end, "open_end": generated.end, "by": "hypervisor_hostname"}
    covered, reservable, busy = (node_hours(truth.filter(pl.col("level") == level), **window)
                                 for level in ("total", "reservable", "occupied"))
    full = (end - start).total_seconds() / 3600
    ranked = (covered.filter(pl.col("node_hours") >= full - 1e-6).select("hypervisor_hostname")
              .join(reservable, on="hypervisor_hostname", how="left")
              .join(busy, on="hypervisor_hostname", how="left", suffix="_busy").fill_null(0.0)
              .sort("node_hours", "node_hours_busy", "hypervisor_hostname", descending=[True, True, False]))
    rule = DemoRule(id="demo-firmware-recall", host=ranked.get_column("hypervisor_hostname")[0], start=start,
                    end=end, path=config_path.parent / RULES_NAME)
    rule.path.write_text(_RULES_TEXT.format(site=RULED_SITE, config=config_path, id=rule.id, host=rule.host,
                                            start=start, end=end))
    return rule


def _midnight(when: dt.datetime) -> dt.datetime:
    return dt.datetime(when.year, when.month, when.day)


def _sqlite_url(out_dir: Path, site: DemoSite) -> str:
    return f"sqlite:///{(out_dir / 'sites' / site.name / 'main.sqlite').resolve()}"


LIFECYCLES = {"shelve_offload": "shelve-offloads", "resize": "resizes", "migrations": "migrations"}


def lifecycle_counts(generated: GeneratedSite) -> dict[str, int]:
    """How many shelve-offloads, resizes and moves the generator wrote (its truth.json)."""
    quirks = json.loads((generated.truth_dir / "truth.json").read_text()).get("quirks", {})
    return {label: int((quirks.get(name) or {}).get("count", 0)) for name, label in LIFECYCLES.items()}


def percent_text(value: float | None) -> str:
    """A signed percentage with two decimals; one that rounds to zero prints +0.00%, never -0.00%."""
    return "" if value is None else f"{round(value, 2) + 0.0:+.2f}%"


def containers_lost_text(run: RunResult) -> str:
    """The audit's bound on the container history Zun's hard deletes took (docs/semantics.md "Devices")."""
    without = read_audit(run.timeline_dir)["devices"]["committed_hours_without_container"]
    return (f"   audit     {without:,.0f} committed device-hours have no container row left "
            "(bounds the occupied hours Zun deleted with the containers)")


def summary_text(result: DemoResult) -> str:
    """What the demo did and how well reconstruction recovered the truth, per site."""
    lines = []
    for item in result.sites:
        backfill = item.run.backfill
        lines.append(f"== {item.site.name} ({item.site.kind}): {item.generated.start:%Y-%m-%d} .. "
                     f"{item.generated.end:%Y-%m-%d}")
        lines.append(f"   snapshot  {item.run.snapshot_dir}")
        lines.append(f"   timeline  {item.run.timeline_dir / 'timeline.parquet'}")
        blocks = f", {len(backfill.blocks)} TSDB blocks in {backfill.blocks_dir}" if backfill.blocks_created else ""
        samples = backfill.samples + sum(counts["samples"] for counts in (backfill.families or {}).values())
        lines.append(f"   backfill  {samples:,} samples in {len(backfill.files)} OpenMetrics files{blocks}")
        if item.site.kind == "kvm":
            lifecycles = lifecycle_counts(item.generated)
            lines.append("   lifecycles " + ", ".join(f"{count:,} {name}" for name, count in lifecycles.items())
                         + " (generated; each placement rebuilt from Nova's rows)")
        if item.rule:
            rule = item.rule
            lines.append(f"   rules     {rule.path}: {rule.id!r} excludes node {rule.host} "
                         f"{rule.start:%Y-%m-%d} .. {rule.end:%Y-%m-%d}")
        if item.site.kind == "edge":
            lines.append(containers_lost_text(item.run))
            lines.append("   device-hours per level    truth         lost   reconstructed   difference vs truth - lost")
        else:
            lines.append("   node-hours per level      truth        rules   reconstructed   difference vs truth + rules")
        for row in item.versus_truth.iter_rows(named=True):
            pct = percent_text(row["difference_pct"])
            lines.append(f"   {row['level']:<20} {row['truth']:>12,.0f} {round(row['rules']):>12,} "
                         f"{row['reconstructed']:>15,.0f}   {pct:>10}")
        if item.pools is not None:
            lines.append("   node-hours per pool       truth     evidence        rules   reconstructed   "
                         "difference vs evidence + rules")
            for row in item.pools.iter_rows(named=True):
                pct = percent_text(row["difference_pct"])
                lines.append(f"   {row['pool']:<20} {row['truth']:>12,.0f} {row['decidable']:>12,.0f} "
                             f"{round(row['rules']):>12,} {row['reconstructed']:>15,.0f}   {pct:>10}")
    lines.append("")
    lines.append(f"config for the demo sites: {result.config_path}")
    lines.append("next:")
    lines.append(f"  usage-exporter serve --config {result.config_path}     # live /metrics on :9188")
    timelines = " ".join(str(item.run.timeline_dir) for item in result.sites)
    first = result.sites[0]
    lines.append(f"  usage-exporter plot {timelines} --config {result.config_path} --out {result.out_dir / 'plots'}")
    lines.append(f"  usage-exporter compare {first.run.timeline_dir}     # vs the legacy reports")
    lines.append(f"  usage-exporter report {first.run.timeline_dir} --period month     # KPI table; --coverage")
    lines.append("  docs/backfill.md: load the blocks into Prometheus; docs/dashboards.md: Grafana")
    return "\n".join(lines)

"""Plain-text summary and next steps for a backfill (what the CLI prints; no I/O here)."""

from __future__ import annotations

import datetime as dt
import math

from exporter.backfill.blocks import BackfillResult, shell_line
from exporter.layout import OPENMETRICS_DIR
from exporter.timeutil import utc_now

DEBIAN_DATA_DIR = "/var/lib/prometheus/metrics2"


def retention_flag(result: BackfillResult, now: dt.datetime | None = None) -> str:
    """A ``--storage.tsdb.retention.time`` that keeps the oldest backfilled sample (at least 15y)."""
    now = now or max(result.cutoff, utc_now())
    years = (now - result.first_sample).days / 365.25
    return f"--storage.tsdb.retention.time={max(15, math.ceil(years) + 1)}y"


def summary(result: BackfillResult) -> str:
    """What was written: files, samples, blocks, cut-off and timings."""
    lines = [
        f"timeline: {result.timeline_path}  ({result.series} series, step {result.step_seconds}s)",
        f"history:  {result.first_sample:%Y-%m-%d %H:%M} .. {result.last_sample:%Y-%m-%d %H:%M} UTC "
        f"(last sample); cut-off {result.cutoff:%Y-%m-%d %H:%M} UTC = end - holdback "
        f"{result.holdback.total_seconds() / 3600:g}h: the live exporter owns everything from there",
        f"written:  {len(result.files)} OpenMetrics file(s) in {result.out_dir / OPENMETRICS_DIR}, "
        f"{result.samples:,} samples, {result.block_hours}h windows, job={result.job!r} "
        f"instance={result.instance!r} ({result.write_seconds:.1f}s)"
        + ("" if all(f.kept for f in result.files) else "; none kept: each one's file was written over or removed once its block was verified"),
    ]
    if result.blocks_created:
        lines.append(f"blocks:   {len(result.blocks)} TSDB block(s) in {result.blocks_dir} "
                     f"(write + promtool {result.promtool_seconds:.1f}s, promtool {result.promtool})")
    if result.negative_samples:
        lines.append(f"warning:  {result.negative_samples} negative gauge sample(s) (data anomalies kept by "
                     "reconstruct); their counters decrease, which Prometheus reads as a reset")
    lines.append(f"manifest: {result.out_dir / 'backfill.json'}")
    return "\n".join(lines)


def promtool_commands(result: BackfillResult) -> str:
    """The promtool commands, one per file (run them in any order, or in parallel)."""
    return "\n".join(shell_line(command) for command in result.commands)


def next_steps(result: BackfillResult) -> str:
    """How to get the history into Prometheus, Thanos, Mimir or VictoriaMetrics."""
    blocks = result.blocks_dir
    steps = [
        "Next steps",
        f"1. Retention FIRST: start Prometheus with {retention_flag(result)} before copying any block in.",
        "   Retention counts back from the newest block, and older blocks are deleted within a minute",
        "   (the default 15d would delete almost all of this history).",
        f"2. Load the same job/instance: scrape the exporter with job_name {result.job!r} and",
        f"   relabel_configs pinning instance to {result.instance!r} (etc/prometheus.yml), so history and",
        "   live samples form ONE series per label set.",
        "3. Install exactly these blocks (it refuses blocks overlapping ones already there, and copies",
        "   each block in under a temporary name before renaming it, so Prometheus never loads half",
        "   a block; loaded within a minute, no restart; a rerun skips blocks already installed):",
        f"     sudo usage-exporter install-blocks {result.out_dir} --data-dir {DEBIAN_DATA_DIR}",
        "   (--data-dir is your --storage.tsdb.path.) Blocks add data, they never replace it: to redo",
        "   history, delete the old blocks from the data directory first.",
        "4. Thanos (object storage):",
        f"     thanos tools bucket upload-blocks --objstore.config-file=bucket.yml --path={blocks} \\",
        "       --label='<external_label>=\"<value>\"'",
        "5. Mimir (re-run with --mimir for 6h blocks; needs limits.compactor_block_upload_enabled: true):",
        f"     mimirtool backfill --address=http://<mimir> --id=<tenant> {blocks}/01*",
        "6. VictoriaMetrics (single node or cluster; no blocks needed, start it with -retentionPeriod=100y):",
        f"     usage-exporter import-vm {result.timeline_path} --url http://<victoria-metrics>:8428",
        "7. Grafana: hourly history needs last_over_time(m[1h]) (the shipped dashboards do this),",
        "   and resource-hours come from counter differences (docs/metrics.md, docs/dashboards.md).",
    ]
    if not result.blocks_created:
        steps[1:1] = ["0. Make the blocks, one per file (use a promtool no newer than your Prometheus):",
                      *(f"     {line}" for line in promtool_commands(result).splitlines()),
                      f"   (mkdir -p {blocks} first; promtool leaves an empty chunks_head/ there: ignore it)"]
    return "\n".join(steps)

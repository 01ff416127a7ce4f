"""``run``: extract (or a given snapshot) -> reconstruct -> backfill for one configured site."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from exporter import layout
from exporter.backfill.blocks import BackfillResult, backfill
from exporter.config import Config
from exporter.errors import SnapshotError
from exporter.progress import SILENT, Progress

RECONSTRUCT_STAGES = 5  # exporter.reconstruct.STAGES
STAGES = 1 + RECONSTRUCT_STAGES + 1


@dataclass(frozen=True)
class RunResult:
    snapshot_dir: Path
    timeline_dir: Path
    reconstruct_summary: str
    backfill: BackfillResult


def run_site(config: Config, site_name: str, *, snapshot_dir: Path | None = None, out_dir: Path | None = None,
             blocks: bool = True, promtool: str | None = None, mimir: bool = False,
             step: dt.timedelta | None = None, now: dt.datetime | None = None,
             snapshot_time: dt.datetime | None = None, allow_incomplete: bool = False,
             progress: Progress | None = None, rules_path: Path | None = None,
             keep_openmetrics: bool = False) -> RunResult:
    """Snapshot ``site_name`` (unless ``snapshot_dir`` is given), reconstruct it from its
    history_start, and backfill the timeline with the site's holdback and the config's job/instance.

    Outputs: ``<out_dir>/timeline/`` (reconstruct) and ``<out_dir>/backfill/`` (openmetrics/,
    blocks/, backfill.json); ``out_dir`` defaults to ``<data_dir>/<site>/out/<snapshot name>``.
    ``snapshot_time`` overrides the moment the data describes (default: the extract's time), e.g.
    for a restored backup or a synthetic site whose history ends before today. ``rules_path``
    replaces the site's rules file (docs/rules.md). ``keep_openmetrics`` keeps each window's
    OpenMetrics file after its block is verified (default: removed, as in ``backfill``).
    Raises SnapshotError when the extract misses required tables or the snapshot fails its checks
    (unless ``allow_incomplete``), and whatever the stages raise.
    """
    from exporter.extract.copy import extract_snapshot
    from exporter.reconstruct.outputs import summary_text
    from exporter.reconstruct.pipeline import reconstruct_into
    from exporter.stage_options import backfill_options, reconstruct_options

    progress = progress or SILENT
    site = config.site(site_name, resolve_env=snapshot_dir is None)  # a given snapshot needs no database
    # a bad rules file fails here, before the extract
    options = reconstruct_options(site, rules_path=rules_path, step=step, snapshot_time=snapshot_time,
                                  allow_incomplete=allow_incomplete)
    if snapshot_dir is None:
        extracted = extract_snapshot(site, config.data_dir, progress=progress)
        if extracted.failed_required and not allow_incomplete:
            raise SnapshotError(f"extract did not copy required table(s) {', '.join(extracted.failed_required)}; "
                                f"see {extracted.snapshot_dir / 'manifest.json'}")
        snapshot_dir = extracted.snapshot_dir
    else:
        with progress.stage("snapshot (given)"):
            snapshot_dir = Path(snapshot_dir)
    out = Path(out_dir) if out_dir else layout.run_out_dir(config.data_dir, site.name, snapshot_dir)
    summary = summary_text(reconstruct_into(snapshot_dir, options, out / layout.TIMELINE_DIR, progress).audit)
    settings = backfill_options(site, config)
    result = backfill(out / layout.TIMELINE_DIR, out / layout.BACKFILL_DIR, blocks=blocks, promtool=promtool,
                      holdback=settings.holdback, job=settings.job, instance=settings.instance,
                      origin=settings.origin, mimir=mimir, now=now, keep_openmetrics=keep_openmetrics,
                      progress=progress)
    return RunResult(snapshot_dir=Path(snapshot_dir), timeline_dir=out / layout.TIMELINE_DIR, reconstruct_summary=summary,
                     backfill=result)

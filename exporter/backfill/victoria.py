"""Timeline -> VictoriaMetrics through its JSON-lines import API, without promtool or files.

The samples are those the promtool path writes (``history.history_before_cutoff``: same cut-off,
names, labels, counter origin; the timeline's families and every extra series family stored beside
it: devices, booked ahead, lead times), sent as one ``POST <url>/api/v1/import`` per epoch-aligned
window, one JSON line per series: ``{"metric":{"__name__":…,labels},"values":[…],"timestamps":[ms…]}``.
VictoriaMetrics answers 204 even when it skips a line or drops samples outside its retention
(it only logs them), and it stores a re-imported sample twice. So the import is checked from the
query side: before sending, the selected range must hold none of these series' samples; after
it, exactly as many as were sent (docs/backfill.md "VictoriaMetrics").
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from exporter.backfill.families import family_counts
from exporter.backfill.history import History, epoch_of, history_before_cutoff, split_windows
from exporter.backfill.openmetrics import escape_label
from exporter.config import DEFAULT_HOLDBACK_HOURS
from exporter.errors import ConfigError, StoreError
from exporter.metrics import DEFAULT_INSTANCE, DEFAULT_JOB, EXTRA_FAMILIES, FAMILIES, ExtraFamily
from exporter.progress import SILENT, Progress

WINDOW_HOURS = 1458  # one request per ~61 days: ~1,500 samples a line, a few MB a request
VISIBLE_WITHIN = 30.0  # seconds for imported samples to become searchable (a cluster has no force_flush)


@dataclass(frozen=True)
class ImportResult:
    url: str
    timeline_path: Path
    job: str
    instance: str
    cutoff: dt.datetime  # first time NOT imported; the live exporter owns [cutoff, ...)
    first_sample: dt.datetime
    last_sample: dt.datetime
    series: int
    samples: int  # the timeline's, sent (and counted back with the families' by a query)
    requests: int
    bytes_sent: int
    seconds: float
    families: dict[str, dict[str, int]] | None = None  # extra family name -> {series, samples} sent


def import_victoriametrics(timeline_dir: str | Path, url: str, *, query_url: str | None = None,
                           holdback: dt.timedelta = dt.timedelta(hours=DEFAULT_HOLDBACK_HOURS),
                           job: str = DEFAULT_JOB, instance: str = DEFAULT_INSTANCE,
                           origin: dt.datetime | None = None, now: dt.datetime | None = None,
                           workers: int | None = None, timeout: float = 300.0,
                           progress: Progress | None = None,
                           declared: tuple[ExtraFamily, ...] = EXTRA_FAMILIES) -> ImportResult:
    """Send the timeline's history to ``url`` (single node ``http://host:8428``, or a cluster's
    ``http://vminsert:8480/insert/<tenant>/prometheus``); ``query_url`` (default ``url``) is where
    the samples are counted (a cluster's ``http://vmselect:8481/select/<tenant>/prometheus``).

    StoreError (one line) when the server cannot be reached, refuses a request, already holds
    samples of these series in the range, or keeps a different number than was sent.
    """
    progress = progress or SILENT
    started = time.perf_counter()
    base, query_base = _base(url), _base(query_url or url)
    history = history_before_cutoff(timeline_dir, holdback=holdback, job=job, instance=instance, origin=origin,
                                     now=now, declared=declared)
    selector = _selector(history, job=job, instance=instance)
    there = _count(query_base, selector, history, timeout)
    if there:
        raise StoreError(f"VictoriaMetrics at {query_base} already holds {there:,} samples of these series between "
                         f"{history.first_sample:%Y-%m-%d %H:%M} and {history.last_sample:%Y-%m-%d %H:%M} UTC; "
                         "importing again would store them twice: delete them first (delete_series with "
                         f"match[]={selector}, docs/backfill.md \"VictoriaMetrics\")")
    windows = _windows(history)
    heads = (_metric_json(history.series, job=job, instance=instance), _heads(history.family_metrics))
    sent = _send_windows(base, windows, heads, selector, workers=workers, timeout=timeout, progress=progress)
    with progress.stage("count the samples back"):
        _flush(base, timeout)
        _await_count(query_base, selector, history, timeout)
    return ImportResult(url=base, timeline_path=history.timeline_path, job=job, instance=instance,
                        cutoff=history.cutoff, first_sample=history.first_sample, last_sample=history.last_sample,
                        series=history.series.height, samples=history.samples.height, requests=len(windows),
                        bytes_sent=sent, seconds=time.perf_counter() - started,
                        families=family_counts(history.families, history.declared))


def _windows(history: History) -> list[tuple[dt.datetime, pl.DataFrame, pl.DataFrame]]:
    """(start, timeline samples, extra-family lines) per epoch-aligned window holding either."""
    timeline = dict(split_windows(history.samples, WINDOW_HOURS))
    extra = dict(split_windows(history.families, WINDOW_HOURS))
    return [(start, timeline.get(start, history.samples.clear()), extra.get(start, history.families.clear()))
            for start in sorted({*timeline, *extra})]


def _send_windows(base: str, windows: list, heads: tuple[pl.Series, pl.Series], selector: str, *,
                  workers: int | None, timeout: float, progress: Progress) -> int:
    """POST every window, ``workers`` at a time; the bytes sent. A failure names what is already in."""
    sent, done = 0, 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool, \
            progress.stage("import into VictoriaMetrics", total=len(windows)) as bar:
        futures = {pool.submit(_send, base, part, extra, heads, timeout): start for start, part, extra in windows}
        try:
            for future in concurrent.futures.as_completed(futures):
                sent, done = sent + future.result(), done + 1
                bar.item(f"{futures[future]:%Y-%m-%d}")
                bar.advance()
        except BaseException as error:
            for future in futures:
                future.cancel()
            if isinstance(error, StoreError) and done:
                raise StoreError(f"{error}; {done} of {len(windows)} window(s) were imported before: delete them "
                                 f"(delete_series with match[]={selector}) before a rerun") from None
            raise
    return sent


def _metric_json(series: pl.DataFrame, *, job: str, instance: str) -> pl.Series:
    """Enum Series like ``sample_prefixes``: index 2*rank = the gauge's ``{"metric":{…},`` head,
    2*rank + 1 = the counter's."""
    names = {f.resource: (f.gauge, f.counter_sample) for f in FAMILIES}
    heads = []
    for row in series.sort("rank").iter_rows(named=True):
        labels = {"instance": instance, "job": job, "node_type": row["node_type"], "pool": row["pool"],
                  "site": row["site"], "state": row["state"]}
        for name in names[row["resource"]]:
            heads.append('{"metric":' + json.dumps({"__name__": name, **labels}, separators=(",", ":")) + ",")
    return pl.Series("head", heads).cast(pl.Enum(heads))


def _heads(metrics: pl.Series) -> pl.Series:
    """The extra families' ``{"metric":{…},`` heads, indexed like their lines' prefix categories."""
    heads = [f'{{"metric":{metric},' for metric in metrics.to_list()]
    return pl.Series("head", heads, dtype=pl.Enum(heads) if heads else pl.String)


def _json_lines(part: pl.DataFrame, metrics: pl.Series, code: pl.Expr) -> bytes:
    """One window's samples as JSON lines, one per series (``code``: its index into ``metrics``), in row order."""
    if part.height == 0:
        return b""
    grouped = (part.select(code=code, value=pl.col("value") + 0.0, ms=pl.col("t") * 1000)
               .group_by("code", maintain_order=True)
               .agg(values=pl.col("value").cast(pl.String).str.join(","), ms=pl.col("ms").cast(pl.String).str.join(",")))
    lines = grouped.select(pl.concat_str([
        pl.lit(metrics.gather(grouped["code"]).cast(pl.String)), pl.lit('"values":['), pl.col("values"),
        pl.lit('],"timestamps":['), pl.col("ms"), pl.lit("]}\n")]))
    return "".join(lines.to_series().to_list()).encode()


TIMELINE_CODE = pl.col("rank").cast(pl.Int64) * 2 + pl.col("family").cast(pl.Int64) % 2  # see _metric_json
FAMILY_CODE = pl.col("prefix").to_physical().cast(pl.Int64)  # see _heads


def _send(base: str, part: pl.DataFrame, extra: pl.DataFrame, heads: tuple[pl.Series, pl.Series],
          timeout: float) -> int:
    """Build one window's request in the worker (only the windows in flight are in memory) and send it."""
    body = _json_lines(part, heads[0], TIMELINE_CODE) + _json_lines(extra, heads[1], FAMILY_CODE)
    request = urllib.request.Request(f"{base}/api/v1/import", data=body, method="POST",
                                     headers={"Content-Type": "application/stream+json"})
    _call(request, timeout, what=f"import of {len(body):,} bytes")
    return len(body)


def _selector(history: History, *, job: str, instance: str) -> str:
    extra = family_counts(history.families, history.declared)
    names = "|".join([*(name for f in FAMILIES for name in (f.gauge, f.counter_sample)),
                      *(f.sample_name for f in history.declared if f.name in extra)])
    sites = "|".join(re.escape(site) for site in sorted(history.origins))
    return (f'{{__name__=~"{names}",job="{escape_label(job)}",instance="{escape_label(instance)}",'
            f'site=~"{escape_label(sites)}"}}')


def _count(query_base: str, selector: str, history: History, timeout: float) -> int:
    """Samples of ``selector`` in [first_sample, last_sample] (raw samples, duplicates included)."""
    last = epoch_of(history.last_sample)
    window = last - epoch_of(history.first_sample) + 1
    query = urllib.parse.urlencode({"query": f"sum(count_over_time({selector}[{window}s]))", "time": last,
                                    "nocache": 1})
    body = _call(urllib.request.Request(f"{query_base}/api/v1/query?{query}"), timeout, what="query")
    try:
        result = json.loads(body)["data"]["result"]
        return int(float(result[0]["value"][1])) if result else 0
    except (ValueError, KeyError, IndexError, TypeError):
        raise StoreError(f"{query_base}/api/v1/query did not answer like VictoriaMetrics: {body[:120]!r}") from None


def _await_count(query_base: str, selector: str, history: History, timeout: float) -> None:
    expected, deadline = history.samples.height + history.families.height, time.monotonic() + VISIBLE_WITHIN
    while (found := _count(query_base, selector, history, timeout)) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
    if found < expected:
        raise StoreError(f"VictoriaMetrics kept {found:,} of the {expected:,} samples sent: it drops samples older "
                         "than its -retentionPeriod (default 1 month; start it with e.g. -retentionPeriod=100y) "
                         "and lines it cannot parse (see its log)")
    if found > expected:
        raise StoreError(f"VictoriaMetrics now holds {found:,} samples of these series in the range, {expected:,} "
                         "were sent: another writer added samples meanwhile")


def _flush(base: str, timeout: float) -> None:
    """Make the samples searchable now (single node only; a cluster's vminsert has no such path)."""
    root = urllib.parse.urlsplit(base)
    try:
        urllib.request.urlopen(f"{root.scheme}://{root.netloc}/internal/force_flush", timeout=timeout).close()
    except (OSError, ValueError):
        pass


def _call(request: urllib.request.Request, timeout: float, *, what: str) -> bytes:
    where = request.full_url.split("?")[0]
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace").strip().splitlines()
        raise StoreError(f"VictoriaMetrics refused the {what} at {where}: HTTP {error.code} "
                         f"{detail[0][:200] if detail else error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        if request.data is not None and isinstance(reason, (ConnectionResetError, BrokenPipeError)):
            # the server answered before it had read the whole body and closed: its answer is lost
            raise StoreError(f"VictoriaMetrics closed the connection during the {what} at {where}: {reason} (it "
                             "refuses a request it cannot take, e.g. a line over its -import.maxLineLen, before "
                             "reading all of it, or it stopped; its log says why)") from None
        raise StoreError(f"cannot reach VictoriaMetrics at {where}: {reason} "
                         "(is it running? a single node listens on :8428)") from None


def _base(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--url {url!r} is not an http(s) URL (e.g. http://127.0.0.1:8428)")
    return url.rstrip("/")

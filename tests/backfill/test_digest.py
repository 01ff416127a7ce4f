"""backfill.json's ``samples_sha256``: the digest of each window's samples, as docs/backfill.md
defines it ("Verifying a re-run"), recomputed here from a kept file's text with struct, not with
the code under test; and different samples give different digests."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import struct
import time

import polars as pl
import pytest

from exporter.backfill import windows
from exporter.backfill.blocks import backfill
from exporter.backfill.digest import samples_sha256
from exporter.backfill.openmetrics import family_parts, write_samples
from exporter.layout import family_file
from tests.backfill.test_families import DECLARED, THINGS, TICKS, things
from tests.backfill.timelines import synthetic_timeline, write_timeline

START = dt.datetime(2024, 1, 1)
NOW = dt.datetime(2030, 1, 1)


def documented_digest(text: str) -> str:
    """docs/backfill.md's definition, from the file's sample lines (``name{labels} value timestamp``)."""
    runs: list[tuple[str, list[tuple[int, float]]]] = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, value, timestamp = line.rsplit(" ", 2)
        if not runs or runs[-1][0] != name:
            runs.append((name, []))
        runs[-1][1].append((int(timestamp), float(value)))
    names = [name.encode() for name, _ in runs]
    samples = [sample for _, run in runs for sample in run]
    data = struct.pack("<Q", len(runs))
    data += b"".join(struct.pack("<Q", len(name)) for name in names)
    data += b"".join(struct.pack("<Q", len(run)) for _, run in runs)
    data += b"".join(names)
    data += b"".join(struct.pack("<q", t) for t, _ in samples)
    data += b"".join(struct.pack("<d", v) for _, v in samples)
    return hashlib.sha256(data).hexdigest()


def test_each_windows_digest_is_the_documented_one_of_its_files_samples(tmp_path):
    timeline = write_timeline(synthetic_timeline(start=START, hours=30, node_types=("a", "b"),
                                                 resources=("nodes", "vcpus")), tmp_path / "timeline")
    family_file(timeline, THINGS.name).parent.mkdir()
    things(30).write_parquet(family_file(timeline, THINGS.name))
    pl.DataFrame({"site": ["uc"] * 3, "device": ["d1"] * 3, "kind": ["a"] * 3,
                  "timestamp": [START + dt.timedelta(hours=h) for h in (0, 7, 20)], "value": [-0.0, 5.0, 7.5]}
                 ).write_parquet(family_file(timeline, TICKS.name))
    result = backfill(timeline, tmp_path / "out", now=NOW, holdback=dt.timedelta(hours=2), block_hours=6,
                      declared=DECLARED)
    manifest = json.loads((tmp_path / "out" / "backfill.json").read_text())
    assert manifest["format"] == 2
    assert len(manifest["files"]) == 5 and all(f["kept"] for f in manifest["files"])
    for entry in manifest["files"]:
        text = (tmp_path / "out" / entry["path"]).read_text()
        assert f"# TYPE {THINGS.name} gauge" in text  # the extra families are in every window
        assert entry["samples_sha256"] == documented_digest(text)
        assert entry["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert [f.samples_sha256 for f in result.files] == [f["samples_sha256"] for f in manifest["files"]]


@pytest.mark.prometheus
def test_each_windows_digest_is_taken_once_its_promtool_has_started(tmp_path, promtool, monkeypatch):
    """Off the path to promtool's start (as the text's hash): with one worker, the k-th window's
    digest waits for the k-th promtool to have logged its start; taken before it, it never would."""
    started = tmp_path / "started"
    wrapper = tmp_path / "logging-promtool"
    wrapper.write_text(f"#!/bin/sh\necho started >> {started}\nexec {promtool} \"$@\"\n")
    wrapper.chmod(0o755)
    seen: list[bool] = []
    real = windows.samples_sha256

    def after_start(parts):
        deadline = time.monotonic() + 5
        while all(seen) and len(_lines_of(started)) <= len(seen) and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(len(_lines_of(started)) > len(seen))
        return real(parts)

    monkeypatch.setattr(windows, "samples_sha256", after_start)
    timeline = write_timeline(synthetic_timeline(start=START, hours=30, node_types=("a",), resources=("nodes",)),
                              tmp_path / "timeline")
    backfill(timeline, tmp_path / "out", blocks=True, promtool=str(wrapper), now=NOW,
             holdback=dt.timedelta(hours=2), block_hours=6, workers=1, declared=DECLARED)
    assert len(seen) == 5 and all(seen)


def _lines_of(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def lines(*samples: tuple[str, int, float], families: list[int] | None = None) -> pl.DataFrame:
    """Sample lines as the writer holds them: (name{labels}, t, value), of family 0 unless ``families``."""
    names = list(dict.fromkeys(name for name, _, _ in samples))
    return pl.DataFrame({"family": families or [0] * len(samples), "prefix": [name for name, _, _ in samples],
                         "value": [value for _, _, value in samples], "t": [t for _, t, _ in samples]},
                        schema={"family": pl.UInt8, "prefix": pl.Enum(names), "value": pl.Float64, "t": pl.Int64})


BASE = (('a{x="1"}', 0, 1.0), ('a{x="1"}', 3600, 2.0), ('b{x="1"}', 0, 3.0))


@pytest.mark.parametrize("changed", [
    (('a{x="1"}', 0, 1.0), ('a{x="1"}', 3600, 2.5), ('b{x="1"}', 0, 3.0)),  # one value
    (('a{x="1"}', 0, 1.0), ('a{x="1"}', 7200, 2.0), ('b{x="1"}', 0, 3.0)),  # one timestamp
    (('a{x="1"}', 0, 1.0), ('a{x="1"}', 3600, 2.0), ('b{x="2"}', 0, 3.0)),  # one label
    (('a{x="1"}', 0, 1.0), ('b{x="1"}', 3600, 2.0), ('b{x="1"}', 0, 3.0)),  # one sample moved to the next series
    (('a{x="1"', 0, 1.0), ('a{x="1"', 3600, 2.0), ('}b{x="1"}', 0, 3.0)),  # the same name bytes, split elsewhere
], ids=["value", "timestamp", "label", "sample-moved", "names-split"])
def test_windows_differing_in_one_sample_or_label_give_different_digests(changed):
    assert samples_sha256([lines(*changed)]) != samples_sha256([lines(*BASE)])


def test_a_window_digest_covers_its_extra_families_as_if_they_continued_the_file():
    """Timeline lines then extra family lines: the same as one part holding both in that order."""
    assert samples_sha256([lines(*BASE[:1]), lines(*BASE[1:])]) == samples_sha256([lines(*BASE)])
    assert samples_sha256([lines(*BASE[:2])]) != samples_sha256([lines(*BASE)])


def test_a_window_digest_takes_the_lines_family_by_family_as_the_file_has_them():
    """Rows of families 0, 1, 0 are written as 0, 0, 1 by the real writer (openmetrics.write_samples):
    the digest of the parts the writer is handed (openmetrics.family_parts, as windows does) is the
    documented one of that text, not of the rows in the order held."""
    held = lines(('a{x="1"}', 0, 1.0), ('b{x="1"}', 0, 3.0), ('a{x="1"}', 3600, 2.0), families=[0, 1, 0])
    parts = family_parts(held)
    buffer = io.BytesIO()
    write_samples(parts, buffer)
    text = buffer.getvalue().decode()
    assert text.index('a{x="1"} 2.0 3600') < text.index('b{x="1"} 3.0 0')  # the file's order is not the rows'
    assert samples_sha256([part for _, part in parts]) == documented_digest(text)

"""The first window computed from its own rows (exporter.backfill.history.first_window), written
while the whole timeline is checked and summed: the same rows and counter bits as the whole path,
none when they could differ, and every fault the whole check finds still named with its message."""

from __future__ import annotations

import datetime as dt
import json
import math
import time

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from exporter import children
from exporter.backfill import blocks
from exporter.engine import chunks
from exporter.backfill.checked import checked_timeline
from exporter.backfill.history import History, abs_sums_by_rank, history_opening, iso, rows_by_key, window_rows
from exporter.backfill.openmetrics import sample_values
from exporter.backfill.windows import write_and_convert
from exporter.engine.running import _quantum, settled_quantum
from exporter.errors import TimelineError
from exporter.layout import family_file
from exporter.metrics import ExtraFamily
from exporter.progress import SILENT
from tests.backfill.timelines import synthetic_timeline, write_timeline

T0 = dt.datetime(2024, 1, 1, 4)
H = dt.timedelta(hours=1)
DAILY = ExtraFamily("openstack_usage_test_daily", ("site", "kind"), "A daily gauge (test family)")


def _timeline(hours_uc: int, late: int, hours_tacc: int, seed: int) -> pl.DataFrame:
    """Two sites, the second starting ``late`` hours after the first (maybe windows later), with
    values of mixed magnitude (so counters' quanta and low parts differ from series to series)."""
    frame = pl.concat([
        synthetic_timeline(start=T0, hours=hours_uc, node_types=("a", "b"), resources=("nodes", "gpus")),
        synthetic_timeline(start=T0 + late * H, hours=hours_tacc, node_types=("a",), resources=("vcpus",), site="tacc")])
    rng = np.random.default_rng(seed)
    values = rng.random(frame.height) * 10.0 ** rng.integers(-3, 13, frame.height)
    return frame.with_columns(value=pl.Series(values))


def _whole_first(frame: pl.DataFrame, cutoff: dt.datetime, hours: int) -> tuple[dt.datetime, pl.DataFrame, int]:
    """The whole path as it was: check, sum, cut off, split; its first window and window count."""
    samples = sample_values(checked_timeline(frame)).filter(pl.col("t") < int((cutoff - dt.datetime(1970, 1, 1))
                                                                            .total_seconds()))
    windows = window_rows(samples, hours)
    return windows[0][0], samples[windows[0][1]], len(windows)


@settings(max_examples=60, deadline=None)
@given(hours_uc=st.integers(2, 40), late=st.integers(0, 30), hours_tacc=st.integers(1, 40),
       seed=st.integers(0, 2**32 - 1), window=st.sampled_from([2, 6, 18]), holdback=st.integers(0, 3))
def test_the_first_window_alone_equals_the_whole_paths_first_window(tmp_path_factory, hours_uc, late, hours_tacc,
                                                                     seed, window, holdback):
    frame = _timeline(hours_uc, late, hours_tacc, seed)
    directory = write_timeline(frame, tmp_path_factory.mktemp("tl"))
    end = max(T0 + hours_uc * H, T0 + (late + hours_tacc) * H)
    opened = history_opening(directory, holdback=holdback * H, job="j", instance="i", now=end, hours=window)
    assert not isinstance(opened, History)
    if end - holdback * H <= T0:  # everything held back: nothing to guess, the whole path says so
        assert opened.first is None
        with pytest.raises(TimelineError, match="nothing to backfill"):
            opened.history()
        return
    start, rows, count = _whole_first(frame, opened.cutoff, window)
    assert opened.first is not None and opened.first[0] == start
    assert opened.first[1].equals(rows)  # bit for bit: counters included (0.0 == -0.0 aside, normalised later)
    assert opened.first[1]["value"].to_numpy().tobytes() == rows["value"].to_numpy().tobytes()
    assert opened.windows == count


def test_rows_by_key_are_each_values_rows_ascending_also_when_a_value_comes_back():
    """A value's runs are laid out together although a later value's run comes first in the rows
    (its row numbers then lie before its place in the layout)."""
    got = rows_by_key(pl.Series("k", [2, 2, 0, 1, 0, 0, 2, 1], dtype=pl.Int64))
    assert {key: rows.to_list() for key, rows in got.items()} == {0: [2, 4, 5], 1: [3, 7], 2: [0, 1, 6]}
    assert list(got) == [0, 1, 2]
    assert all(rows.dtype == pl.get_index_type() for rows in got.values())  # gathered without a conversion


def test_abs_sums_by_rank_add_every_row_once_across_chunks_and_blocks(monkeypatch):
    """Chunks of several lengths, blocks shorter than a chunk (so a block ends inside one, and a
    chunk's last block is short): each series' Σ|value · step| over all rows. Halves of small
    integers sum exactly in any order, so the block-by-block sums must equal one pass's."""
    monkeypatch.setattr(chunks, "BLOCK_ROWS", 3)
    rng = np.random.default_rng(7)
    lengths = (5, 1, 8, 3)
    values = pl.concat([pl.Series("value", rng.integers(-40, 40, n) / 2.0) for n in lengths], rechunk=False)
    assert values.n_chunks() == len(lengths)
    codes = rng.choice(np.array([3, 9, 12], dtype=np.uint64), values.len())
    rank_of_code = np.zeros(13, dtype=np.uint32)
    rank_of_code[[3, 9, 12]] = [2, 0, 1]
    expected = np.bincount(rank_of_code[codes], weights=np.abs(values.to_numpy() * 60), minlength=3)
    assert abs_sums_by_rank(codes, rank_of_code, values, 60, 3).tolist() == expected.tolist()


def test_settled_quantum_is_the_running_sums_or_none_near_a_power_of_two():
    sums = pl.Series([3.0, 0.0, 1e300, 2.0 ** 40, math.nextafter(2.0 ** 40, 0.0), 5e-320])
    got = settled_quantum(sums, pl.Series([10] * 6)).to_list()
    expected = pl.DataFrame({"s": sums, "g": range(6)}).select(_quantum(pl.col("s"), "g")).to_series().to_list()
    assert got[:3] == expected[:3] and got[5] == expected[5]
    assert got[3] is None and got[4] is None  # a sum within its rounding of 2^40: another order may cross it


def test_a_series_summing_to_a_power_of_two_is_not_guessed(tmp_path):
    frame = synthetic_timeline(start=T0, hours=30, node_types=("a",), resources=("nodes",))
    # every term 2^10 seconds: each of the 8 series sums to 30 * 2^10 (near no power of two) but one to 2^15
    frame = frame.with_columns(value=pl.lit(2.0 ** 10 / 3600))
    frame = frame.with_columns(value=pl.when((pl.col("state") == "idle") & (pl.col("timestamp") >= T0 + 2 * H))
                               .then(0.0).otherwise(pl.col("value")))
    frame = frame.with_columns(value=pl.when((pl.col("state") == "idle") & (pl.col("timestamp") == T0 + H))
                               .then(2.0 ** 15 / 3600 - pl.col("value")).otherwise(pl.col("value")))
    directory = write_timeline(frame, tmp_path / "tl")
    opened = history_opening(directory, holdback=H, job="j", instance="i", now=T0 + 30 * H, hours=6)
    assert opened.first is None


def _faults() -> dict[str, pl.DataFrame]:
    dense = synthetic_timeline(start=T0, hours=30, node_types=("a", "b"), resources=("nodes", "gpus"))
    late = pl.col("timestamp") == T0 + 20 * H  # in a later window than the first (6h windows from 00:00)
    first = pl.col("timestamp") == T0 + H  # in the first window
    one = (pl.col("node_type") == "b") & (pl.col("state") == "idle") & (pl.col("resource") == "gpus")
    return {
        "hole later": dense.filter(~(late & one)),
        "hole first": dense.filter(~(first & one)),
        "duplicate later": pl.concat([dense, dense.filter(late & one)]),
        "duplicate first": pl.concat([dense, dense.filter(first & one)]),
        "duplicate beside a hole": pl.concat([dense.filter(~(late & one)), dense.filter(first & one)]),
        "series missing a window": dense.filter(~(one & (pl.col("timestamp") >= T0 + 8 * H)
                                                  & (pl.col("timestamp") < T0 + 14 * H))),
    }


@pytest.mark.parametrize("name", list(_faults()))
def test_a_fault_the_whole_check_finds_fails_the_run_with_its_message_and_keeps_the_previous_output(tmp_path, name):
    good = write_timeline(synthetic_timeline(start=T0, hours=30, node_types=("a",)), tmp_path / "good")
    out = tmp_path / "out"
    blocks.backfill(good, out, holdback=H, now=T0 + 30 * H, block_hours=6)
    before = (out / "backfill.json").read_text()
    frame = _faults()[name]
    with pytest.raises(TimelineError) as whole:
        checked_timeline(frame)
    bad = write_timeline(frame, tmp_path / "bad")
    opened = history_opening(bad, holdback=H, job="j", instance="i", now=T0 + 30 * H, hours=6)
    assert opened.first is not None  # written before the fault is found
    with pytest.raises(TimelineError) as caught:
        blocks.backfill(bad, out, holdback=H, now=T0 + 30 * H, block_hours=6)
    assert str(caught.value) == str(whole.value)
    assert (out / "backfill.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "good", "out"]  # no staging left


def test_a_site_not_starting_at_the_origin_fails_as_before(tmp_path):
    directory = write_timeline(_timeline(20, 5, 10, 1), tmp_path / "tl")
    opened = history_opening(directory, holdback=H, job="j", instance="i", now=T0 + 20 * H, hours=6, origin=T0)
    assert opened.first is None  # the whole path names the late site
    with pytest.raises(TimelineError, match="'tacc' starts at"):
        blocks.backfill(directory, tmp_path / "out", holdback=H, now=T0 + 20 * H, block_hours=6, origin=T0)


def test_a_first_window_unlike_the_whole_timelines_fails_the_run(tmp_path):
    """The guard behind the guess: a first window that differs from the checked one is not kept."""
    directory = write_timeline(_timeline(20, 0, 20, 2), tmp_path / "tl")
    opened = history_opening(directory, holdback=H, job="j", instance="i", now=T0 + 20 * H, hours=6)
    start, rows = opened.first
    wrong = rows.with_columns(value=pl.when(pl.int_range(pl.len()) == 3).then(pl.col("value") + 1.0)
                              .otherwise(pl.col("value")))
    with pytest.raises(TimelineError, match="differ from the whole timeline's"):
        write_and_convert(lambda: opened.history().samples, opened.series, tmp_path / "out", hours=6, tool=None,
                          workers=2, keep_openmetrics=True, progress=SILENT, first=(start, wrong), total=opened.windows)


def test_the_manifest_lists_the_windows_in_window_order(tmp_path):
    """A daily family at midnight makes a window before the timeline's first one (04:00), which is
    submitted first: the manifest still lists the windows by time."""
    directory = write_timeline(_timeline(40, 7, 30, 3), tmp_path / "tl")
    family_file(directory, DAILY.name).parent.mkdir()
    midnight = dt.datetime(2024, 1, 1)
    pl.DataFrame([("uc", "a", midnight, 1.0), ("uc", "a", midnight + 24 * H, 2.0)], schema=DAILY.columns,
                 orient="row").write_parquet(family_file(directory, DAILY.name))
    opened = history_opening(directory, holdback=H, job="j", instance="i", now=T0 + 40 * H, hours=2, declared=(DAILY,))
    assert opened.first is not None and opened.first[0] == T0
    result = blocks.backfill(directory, tmp_path / "out", holdback=H, now=T0 + 40 * H, block_hours=2,
                             declared=(DAILY,))
    manifest = json.loads((tmp_path / "out" / "backfill.json").read_text())
    starts = [f["window_start"] for f in manifest["files"]]
    assert starts[0] == iso(midnight) and starts == sorted(starts)
    assert len(starts) == len(result.files) == 1 + 20  # midnight's window, then 04:00 .. 18:00 (cut-off 19:00)


def test_a_failing_run_stops_the_first_windows_render_at_its_next_family(tmp_path, monkeypatch):
    """The whole check failing while the first window renders: that render stops at its next
    family (the pool's exit waits for it) rather than writing the whole window first.

    The check fails once the render has passed its first family's stop check, so the window is
    never cancelled or stopped before it starts; the render is held before its second family
    until the run is failing, so the failure surely arrives mid-render, however loaded the
    machine (waiting for the file instead let a loaded run set the flag before the first check)."""
    directory = write_timeline(_timeline(40, 0, 40, 3), tmp_path / "tl")
    opened = history_opening(directory, holdback=H, job="j", instance="i", now=T0 + 40 * H, hours=18)
    real_check, passed = children.raise_if_stopping, []

    def held_before_the_second_family(stop=None):
        if passed and stop is not None:
            stop.wait(60)
        real_check(stop)
        passed.append(1)

    monkeypatch.setattr(children, "raise_if_stopping", held_before_the_second_family)

    def failing_check() -> pl.DataFrame:
        waited_until = time.monotonic() + 60
        while not passed and time.monotonic() < waited_until:
            time.sleep(0.0005)
        raise TimelineError("the whole check failed")

    with pytest.raises(TimelineError, match="the whole check failed"):
        write_and_convert(failing_check, opened.series, tmp_path / "out", hours=18, tool=None, workers=1,
                          keep_openmetrics=True, progress=SILENT, first=opened.first, total=opened.windows)
    texts = [path.read_bytes() for path in (tmp_path / "out" / "openmetrics").glob("*.om")]
    assert texts and not any(text.endswith(b"# EOF\n") for text in texts)
    assert len(passed) == 1  # stopped at the second family, not after the window

"""The output set written while the reconstruction runs: same bytes, errors surface, nothing half-published."""

from __future__ import annotations

import threading

import polars as pl
import pytest

from exporter.errors import OutputError
from exporter.reconstruct.output_set import OutputSet
from exporter.reconstruct.pipeline import reconstruct_into, reconstruct_snapshot
from tests.core.crash_support import staging_leftovers, tree
from tests.reconstruct.test_reconstruct import OPTIONS, small_site, write_snapshot


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    return write_snapshot(tmp_path_factory.mktemp("snap") / "snap", small_site())


@pytest.fixture(scope="module")
def rec(snapshot):
    return reconstruct_snapshot(snapshot, OPTIONS)


def test_written_while_reconstructing_equals_written_at_the_end(snapshot, rec, tmp_path):
    with OutputSet(tmp_path / "after") as outputs:  # every part handed over once the reconstruction is done
        outputs.spans(rec.spans, rec.rejected, rec.leadtimes)
        outputs.timeline(rec.grid)
        outputs.families(rec.families)
        outputs.closing(audit=rec.audit, devices=rec.devices, device_timeline=rec.device_timeline,
                        leadtime_timeline=rec.leadtime_timeline)
        outputs.publish()
    reconstruct_into(snapshot, OPTIONS, tmp_path / "during")
    assert tree(tmp_path / "during") == tree(tmp_path / "after")
    assert {"spans.parquet", "rejected.parquet", "timeline.parquet", "audit.json"} <= set(tree(tmp_path / "during"))


def test_a_failed_background_write_raises_its_error_and_publishes_nothing(snapshot, rec, tmp_path):
    out = tmp_path / "out"
    reconstruct_into(snapshot, OPTIONS, out)
    previous = tree(out)
    with pytest.raises(ValueError, match="not declared"), OutputSet(out) as outputs:
        outputs.spans(rec.spans, rec.rejected, rec.leadtimes)
        outputs.families({"no_such_family": pl.DataFrame({"value": [1.0]})})  # fails in the writer thread
        outputs.timeline(rec.grid)
        outputs.closing(audit=rec.audit)
        outputs.publish()
    assert tree(out) == previous
    assert staging_leftovers(tmp_path) == []


def test_a_write_failure_seen_at_publish_cancels_the_writes_still_queued(tmp_path):
    import time

    written = []

    def failing(_directory):
        raise OSError("disk gone")

    def running_on(_directory):  # the writer is busy here while the failure is seen; the next write queues
        deadline = time.monotonic() + 5
        while not outputs._writes[2].cancelled() and time.monotonic() < deadline:
            time.sleep(0.01)
        written.append("running")

    with pytest.raises(OSError, match="disk gone"), OutputSet(tmp_path / "out") as outputs:
        outputs._hand_over(failing)
        outputs._writes[0].exception()  # failed, and not yet seen by the set
        outputs._writes.append(outputs._writer.submit(running_on, outputs._staging))
        outputs._writes.append(outputs._writer.submit(lambda directory: written.append("queued"), outputs._staging))
        outputs.publish()
    assert "queued" not in written  # before: it ran after the failure was known
    assert staging_leftovers(tmp_path) == []


def test_the_families_are_written_while_the_writes_before_them_still_run(rec, tmp_path):
    """The families have their own thread: made before the timeline's write ends, they do not wait for it."""
    release = threading.Event()
    with OutputSet(tmp_path / "out") as outputs:
        outputs._hand_over(lambda directory: release.wait(30))  # e.g. timeline.parquet, still being written
        outputs.families(rec.families)
        outputs._writes[-1].result(timeout=10)  # serial after the first write, this would time out
        assert not outputs._writes[0].done()
        release.set()
        outputs.publish()
    assert rec.families and {path.stem for path in (tmp_path / "out" / "families").iterdir()} == set(rec.families)


def test_an_error_while_reconstructing_discards_the_parts_already_written(snapshot, rec, tmp_path):
    out = tmp_path / "out"
    reconstruct_into(snapshot, OPTIONS, out)
    previous = tree(out)
    with pytest.raises(KeyboardInterrupt), OutputSet(out) as outputs:
        outputs.spans(rec.spans, rec.rejected, rec.leadtimes)
        outputs.timeline(rec.grid)
        raise KeyboardInterrupt  # e.g. an interrupt, or an invariant that fails after the spans were handed over
    assert tree(out) == previous
    assert staging_leftovers(tmp_path) == []  # the writes finished before the staging directory was removed


def test_a_foreign_output_directory_is_refused_at_the_first_hand_over(rec, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="did not write"), OutputSet(out) as outputs:
        outputs.spans(rec.spans, rec.rejected)
    assert tree(out) == {"notes.txt": tree(out)["notes.txt"]}

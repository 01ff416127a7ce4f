"""A failure on the span stage's second thread reaches the caller, and is not lost when the first thread fails too."""

from __future__ import annotations

import pytest

from exporter.adapters.registry import declared_tables
from exporter.cli import main
from exporter.db import open_engine
from exporter.errors import InvariantViolation
from exporter.extract.tableread import read_tables
from exporter.reconstruct import audit as auditing
from exporter.reconstruct import bookings, knowledge, leadtime
from exporter.reconstruct.pipeline import spans_from_tables
from exporter.sitegen import generate_site
from tests.reconstruct.test_reconstruct import small_site, write_snapshot

SIDE_JOBS = [(leadtime, "lease_leadtimes", "lead times broke"), (auditing, "span_audit", "audit broke"),
             (bookings, "bookings", "bookings broke")]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A small generated site's tables and its end."""
    work = tmp_path_factory.mktemp("site")
    site = generate_site(f"sqlite:///{work}/site.sqlite", truth_dir=work / "truth", hosts=3, years=0.1, seed=2)
    engine = open_engine(site.url, databases=site.databases)
    tables = {name: read.frame for name, read in read_tables(engine, declared_tables()).items()
              if read.frame is not None}
    engine.dispose()
    return tables, site.end


def fails_with(error: Exception):
    def fail(*args, **kwargs):
        raise error
    return fail


@pytest.mark.parametrize("module, name, message", SIDE_JOBS)
def test_a_side_job_failing_reaches_the_caller(synthetic, monkeypatch, module, name, message):
    tables, end = synthetic
    monkeypatch.setattr(module, name, fails_with(ValueError(message)))
    with pytest.raises(ValueError, match=message) as failure:
        spans_from_tables(tables, site="synthetic", snapshot_time=end)
    assert not getattr(failure.value, "__notes__", [])


@pytest.mark.parametrize("module, name, message", SIDE_JOBS)
def test_both_threads_failing_reports_both(synthetic, monkeypatch, module, name, message):
    # a bookings failure is re-raised by the lead times' job too: noted once
    tables, end = synthetic
    monkeypatch.setattr(module, name, fails_with(ValueError(message)))
    monkeypatch.setattr(knowledge, "with_knowledge_times", fails_with(InvariantViolation("knowledge broke")))
    with pytest.raises(InvariantViolation, match="knowledge broke") as failure:
        spans_from_tables(tables, site="synthetic", snapshot_time=end)
    assert failure.value.__notes__ == [f"a side thread failed too: ValueError: {message}"]  # the old code dropped it


def test_a_bookings_failure_is_raised_before_the_span_audits(synthetic, monkeypatch):
    # as when the bookings were made on the main thread, mid-stage, before the span audit
    tables, end = synthetic
    monkeypatch.setattr(bookings, "bookings", fails_with(ValueError("bookings broke")))
    monkeypatch.setattr(auditing, "span_audit", fails_with(ValueError("audit broke")))
    with pytest.raises(ValueError) as failure:
        spans_from_tables(tables, site="synthetic", snapshot_time=end)
    assert str(failure.value) == "bookings broke"
    assert failure.value.__notes__ == ["a side thread failed too: ValueError: audit broke"]


def test_the_command_line_prints_the_note_under_its_error_line(tmp_path, monkeypatch, capsys):
    snapshot = write_snapshot(tmp_path / "snap", small_site())
    monkeypatch.setattr(leadtime, "lease_leadtimes", fails_with(ValueError("lead times broke")))
    monkeypatch.setattr(knowledge, "with_knowledge_times", fails_with(InvariantViolation("knowledge broke")))
    with pytest.raises(SystemExit) as stopped:
        main(["reconstruct", str(snapshot), "--site", "s", "--out", str(tmp_path / "out"), "--from", "2020-01-01",
              "--quiet"])
    assert stopped.value.code == InvariantViolation.exit_code
    assert capsys.readouterr().err.splitlines() == [
        "error: knowledge broke", "  a side thread failed too: ValueError: lead times broke"]

"""A failure on the span stage's second thread is not lost when the first thread fails too."""

from __future__ import annotations

import pytest

from exporter.adapters.registry import declared_tables
from exporter.cli import main
from exporter.db import open_engine
from exporter.errors import InvariantViolation
from exporter.extract.tableread import read_tables
from exporter.reconstruct import knowledge, leadtime
from exporter.reconstruct.pipeline import spans_from_tables
from exporter.sitegen import generate_site
from tests.reconstruct.test_reconstruct import small_site, write_snapshot


def test_both_threads_failing_reports_both(tmp_path, monkeypatch):
    site = generate_site(f"sqlite:///{tmp_path}/site.sqlite", truth_dir=tmp_path / "truth", hosts=3, years=0.1, seed=2)
    engine = open_engine(site.url, databases=site.databases)
    tables = {name: read.frame for name, read in read_tables(engine, declared_tables()).items()
              if read.frame is not None}
    engine.dispose()

    def lead_times_fail(*args, **kwargs):
        raise ValueError("lead times broke")

    def knowledge_fails(*args, **kwargs):
        raise InvariantViolation("knowledge broke")

    monkeypatch.setattr(leadtime, "lease_leadtimes", lead_times_fail)
    monkeypatch.setattr(knowledge, "with_knowledge_times", knowledge_fails)
    with pytest.raises(InvariantViolation, match="knowledge broke") as failure:
        spans_from_tables(tables, site="synthetic", snapshot_time=site.end)
    assert failure.value.__notes__ == ["a side thread failed too: ValueError: lead times broke"]  # the old code dropped it


def test_the_command_line_prints_the_note_under_its_error_line(tmp_path, monkeypatch, capsys):
    def lead_times_fail(*args, **kwargs):
        raise ValueError("lead times broke")

    def knowledge_fails(*args, **kwargs):
        raise InvariantViolation("knowledge broke")

    snapshot = write_snapshot(tmp_path / "snap", small_site())
    monkeypatch.setattr(leadtime, "lease_leadtimes", lead_times_fail)
    monkeypatch.setattr(knowledge, "with_knowledge_times", knowledge_fails)
    with pytest.raises(SystemExit) as stopped:
        main(["reconstruct", str(snapshot), "--site", "s", "--out", str(tmp_path / "out"), "--from", "2020-01-01",
              "--quiet"])
    assert stopped.value.code == InvariantViolation.exit_code
    assert capsys.readouterr().err.splitlines() == [
        "error: knowledge broke", "  a side thread failed too: ValueError: lead times broke"]

"""Same arguments -> byte-identical files: the SQLite files and the truth, for both generators."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from exporter.db import open_engine
from exporter.sitegen import generate_site
from exporter.sitegen.writer import recreate_tables

TINY = dict(hosts=3, years=0.3, seed=5)


def file_bytes(directory) -> dict[str, bytes]:
    return {str(path.relative_to(directory)): path.read_bytes()
            for path in sorted(directory.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("kind", ["baremetal", "edge"])
def test_two_generations_write_the_same_bytes(tmp_path, kind):
    # three runs in one process: the index order used to follow set iteration (object ids), which
    # differed between runs of one process more often than between processes
    runs = [tmp_path / f"run{i}" for i in range(3)]
    for run in runs:
        generate_site(f"sqlite:///{run}/main.sqlite", kind=kind, truth_dir=run / "truth", **TINY)
    first = file_bytes(runs[0])
    assert any(name.startswith("truth/") for name in first) and "blazar.sqlite" in first
    for run in runs[1:]:
        assert file_bytes(run) == first


def test_indexes_are_created_in_name_order(tmp_path):
    # many indexes on one table: a set's iteration order matching name order by chance is negligible
    metadata = sa.MetaData()
    columns = [sa.Column(f"c{i:02d}", sa.Integer, index=True) for i in range(16)]
    sa.Table("wide", metadata, sa.Column("id", sa.Integer, primary_key=True), *columns, schema="blazar")
    engine = open_engine(f"sqlite:///{tmp_path}/main.sqlite", {}, writable=True)
    try:
        recreate_tables(engine, metadata)
    finally:
        engine.dispose()
    conn = sqlite3.connect(tmp_path / "blazar.sqlite")
    names = [n for (n,) in conn.execute("select name from sqlite_master where type = 'index' and name like 'ix_%'")]
    conn.close()
    assert len(names) == 16 and names == sorted(names)

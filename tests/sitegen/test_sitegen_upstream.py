"""The upstream-Blazar variants of the generator: hard deletes, no soft-delete columns, truth kept."""

from __future__ import annotations

import json
import sqlite3

import polars as pl
import pytest
from click.testing import CliRunner

from exporter.cli.generate_site import command as generate_command
from exporter.errors import ConfigError
from exporter.sitegen import generate_site

SMALL = dict(hosts=12, years=1, seed=7)


def blazar_table(directory, table: str) -> tuple[list[str], list[tuple]]:
    conn = sqlite3.connect(directory / "blazar.sqlite")
    cursor = conn.execute(f'SELECT * FROM "{table}"')
    columns = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    conn.close()
    return columns, rows


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    out = {}
    for variant in ("chameleon", "upstream", "upstream_purged"):
        directory = tmp_path_factory.mktemp(variant)
        out[variant] = (directory, generate_site(f"sqlite:///{directory}/main.sqlite", blazar=variant, **SMALL))
    return out


@pytest.mark.parametrize("variant", ["upstream", "upstream_purged"])
def test_upstream_blazar_tables_have_no_soft_delete_columns(sites, variant):
    directory, _ = sites[variant]
    for table in ("leases", "reservations", "computehosts", "computehost_allocations",
                  "computehost_reservations", "computehost_extra_capabilities"):
        columns, _ = blazar_table(directory, table)
        assert "deleted" not in columns and "deleted_at" not in columns, table
    assert "disabled" not in blazar_table(directory, "computehosts")[0]


def test_upstream_keeps_only_rows_chameleon_has_not_deleted(sites):
    chameleon_dir, site = sites["chameleon"]
    upstream_dir, _ = sites["upstream"]
    columns, rows = blazar_table(chameleon_dir, "computehost_allocations")
    live = {row[columns.index("id")] for row in rows if row[columns.index("deleted_at")] is None}
    up_columns, up_rows = blazar_table(upstream_dir, "computehost_allocations")
    kept = {row[up_columns.index("id")] for row in up_rows}
    assert kept and kept <= live
    assert len(kept) < len(rows)  # ended leases' allocations are gone


def test_purged_variant_keeps_no_ended_lease(sites):
    directory, site = sites["upstream_purged"]
    columns, rows = blazar_table(directory, "leases")
    ends = [row[columns.index("end_date")] for row in rows]
    assert all(end > str(site.end) for end in ends)
    _, kept_upstream = blazar_table(sites["upstream"][0], "leases")
    assert len(rows) < len(kept_upstream)


def test_truth_is_the_same_and_records_what_upstream_deleted(sites):
    truths = {v: json.loads((s.truth_dir / "truth.json").read_text()) for v, (_, s) in sites.items()}
    spans = {v: pl.read_parquet(s.truth_dir / "truth_spans.parquet") for v, (_, s) in sites.items()}
    assert spans["chameleon"].equals(spans["upstream"]) and spans["chameleon"].equals(spans["upstream_purged"])
    assert truths["chameleon"]["blazar"]["gone_committed_node_hours"] == 0
    gone = truths["upstream_purged"]["blazar"]
    assert 0 < gone["provable_committed_node_hours"] <= gone["gone_committed_node_hours"]
    assert gone["gone_committed_node_hours"] <= truths["upstream_purged"]["node_hours"]["committed"]
    assert truths["upstream"]["params"]["blazar"] == "upstream"


def test_unknown_variant_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="blazar must be one of"):
        generate_site(f"sqlite:///{tmp_path}/main.sqlite", blazar="vanilla", **SMALL)


def test_cli_generates_the_upstream_variant(tmp_path):
    result = CliRunner().invoke(generate_command, ["--db-url", f"sqlite:///{tmp_path}/main.sqlite", "--hosts", "3",
                                                   "--years", "0.2", "--blazar", "upstream"])
    assert result.exit_code == 0, result.output
    assert "deleted_at" not in blazar_table(tmp_path, "leases")[0]

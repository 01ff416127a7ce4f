"""Synthetic site generator: determinism, both backends, truth consistency, CLI."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import polars as pl
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from exporter.cli.generate_site import command as generate_command
from exporter.db import open_engine
from exporter.columns import SPAN_SCHEMA
from exporter.sitegen import generate_site
from exporter.sitegen.schema import build_metadata

SMALL = dict(hosts=12, years=1, seed=7)
SCHEMAS = ("nova", "nova_api", "blazar", "chameleon_usage", "openstack_audit")


def sqlite_dump(directory) -> dict[str, list[tuple]]:
    """Every table of every schema file, rows sorted, keyed by schema.table."""
    out = {}
    for schema in SCHEMAS:
        conn = sqlite3.connect(directory / f"{schema}.sqlite")
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            out[f"{schema}.{table}"] = sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
        conn.close()
    return out


@pytest.fixture(scope="module")
def small_site(tmp_path_factory):
    directory = tmp_path_factory.mktemp("site")
    site = generate_site(f"sqlite:///{directory}/main.sqlite", **SMALL)
    return directory, site


def test_same_seed_gives_identical_tables_and_truth(small_site, tmp_path):
    directory, site = small_site
    again = generate_site(f"sqlite:///{tmp_path}/main.sqlite", **SMALL)
    assert sqlite_dump(directory) == sqlite_dump(tmp_path)
    assert again.row_counts == site.row_counts
    first = pl.read_parquet(site.truth_dir / "truth_spans.parquet")
    second = pl.read_parquet(again.truth_dir / "truth_spans.parquet")
    assert first.equals(second)
    truth = [json.loads((s.truth_dir / "truth.json").read_text()) for s in (site, again)]
    assert truth[0]["node_hours"] == truth[1]["node_hours"] and truth[0]["quirks"] == truth[1]["quirks"]
    assert truth[0]["pools"] == truth[1]["pools"]
    assert pl.read_parquet(site.truth_dir / "truth_pools.parquet").equals(
        pl.read_parquet(again.truth_dir / "truth_pools.parquet"))


def test_other_seed_gives_another_site(small_site, tmp_path):
    directory, _ = small_site
    generate_site(f"sqlite:///{tmp_path}/main.sqlite", **{**SMALL, "seed": 8})
    assert sqlite_dump(directory)["blazar.leases"] != sqlite_dump(tmp_path)["blazar.leases"]


def test_site_fields_and_default_truth_dir(small_site):
    directory, site = small_site
    assert site.start == dt.datetime(2016, 1, 1) and site.end == dt.datetime(2017, 1, 1)
    assert site.truth_dir == directory / "truth"
    assert (site.truth_dir / "truth_spans.parquet").exists()
    # every rendered table is counted, and the adapters' tables are among them
    for name in ("nova.compute_nodes", "nova.instances", "nova.instance_actions_events", "nova_api.request_specs",
                 "blazar.leases", "blazar.computehost_allocations", "blazar.computehost_extra_capabilities",
                 "blazar.resource_properties", "chameleon_usage.node_usage_report_cache"):
        assert site.row_counts[name] > 0, name


def test_no_row_is_dated_after_the_snapshot(small_site):
    directory, site = small_site
    engine = open_engine(f"sqlite:///{directory}/main.sqlite")
    future_ok = {("blazar.leases", "start_date"), ("blazar.leases", "end_date")}
    with engine.connect() as conn:
        for name in site.row_counts:
            schema, table = name.split(".")
            columns = sa.inspect(conn).get_columns(table, schema=schema)
            for col in columns:
                if isinstance(col["type"], sa.DateTime) and (name, col["name"]) not in future_ok:
                    latest = conn.execute(sa.text(f'SELECT max("{col["name"]}") FROM {schema}."{table}"')).scalar()
                    assert latest is None or str(latest) <= str(site.end), (name, col["name"], latest)


def test_truth_spans_schema_and_node_hours(small_site):
    _, site = small_site
    spans = pl.read_parquet(site.truth_dir / "truth_spans.parquet")
    assert spans.schema == pl.Schema(SPAN_SCHEMA)
    assert spans["source_table"].unique().to_list() == ["truth"]
    assert spans["node_type"].null_count() == 0 and spans["hypervisor_hostname"].null_count() == 0
    hours = (spans.with_columns(pl.col("end").fill_null(site.end))
             .group_by("level").agg(((pl.col("end") - pl.col("start")).dt.total_seconds() / 3600
                                     * pl.col("nodes")).sum().alias("h")))
    by_level = dict(zip(hours["level"], hours["h"]))
    assert set(by_level) == {"total", "reservable", "committed", "maintenance", "occupied", "stopped"}
    truth = json.loads((site.truth_dir / "truth.json").read_text())
    for level, value in by_level.items():
        assert truth["node_hours"][level] == pytest.approx(value)
    # nothing can exceed the hosts' existence: total <= hosts x period
    assert by_level["total"] <= SMALL["hosts"] * (site.end - site.start).total_seconds() / 3600
    assert by_level["reservable"] <= by_level["total"]
    assert by_level["committed"] + by_level["maintenance"] <= by_level["reservable"]
    assert by_level["stopped"] < by_level["occupied"]


def _overlaps(frame: pl.DataFrame, end: dt.datetime) -> int:
    """Pairs of consecutive spans per host that overlap."""
    ordered = frame.with_columns(pl.col("end").fill_null(end)).sort("hypervisor_hostname", "start")
    return ordered.filter(
        (pl.col("hypervisor_hostname") == pl.col("hypervisor_hostname").shift(-1))
        & (pl.col("end") > pl.col("start").shift(-1))
    ).height


def test_truth_is_physically_consistent(small_site):
    _, site = small_site
    spans = pl.read_parquet(site.truth_dir / "truth_spans.parquet")
    for level in ("total", "reservable", "occupied"):
        assert _overlaps(spans.filter(level=level), site.end) == 0, level
    booked = spans.filter(pl.col("level").is_in(["committed", "maintenance"]))
    assert _overlaps(booked, site.end) == 0
    # every booking lies inside a reservable span of its host
    reservable = spans.filter(level="reservable").select("hypervisor_hostname", rs="start",
                                                         re=pl.col("end").fill_null(site.end))
    inside = (booked.with_columns(pl.col("end").fill_null(site.end)).join(reservable, on="hypervisor_hostname")
              .filter((pl.col("start") >= pl.col("rs")) & (pl.col("end") <= pl.col("re"))))
    # (a Blazar row's maintenance masks share its id: a booking is its id and start)
    assert inside.select("source_id", "start").n_unique() == booked.height


def test_cli_writes_site_and_prints_summary(tmp_path):
    result = CliRunner().invoke(generate_command, ["--db-url", f"sqlite:///{tmp_path}/main.sqlite", "--hosts", "4",
                                                   "--years", "0.2", "--seed", "1", "--no-quirk", "broken_rows"])
    assert result.exit_code == 0, result.output
    assert "nova.instances" in result.output and str(tmp_path / "truth") in result.output
    truth = json.loads((tmp_path / "truth" / "truth.json").read_text())
    assert truth["quirks"]["broken_rows"]["enabled"] is False
    assert truth["params"]["hosts"] == 4


@pytest.mark.mariadb
def test_mariadb_gets_the_same_tables(mariadb_url, db_prefix, small_site, tmp_path):
    directory, site = small_site
    databases = {schema: f"{db_prefix}{schema}" for schema in SCHEMAS}
    remote = generate_site(mariadb_url, databases=databases, truth_dir=tmp_path / "truth", **SMALL)
    assert remote.row_counts == site.row_counts
    metadata = build_metadata()
    for name in ("blazar.leases", "nova.instances", "blazar.computehost_extra_capabilities", "nova.compute_nodes"):
        assert _rows(open_engine(mariadb_url, databases), metadata.tables[name]) == _rows(
            open_engine(f"sqlite:///{directory}/main.sqlite"), metadata.tables[name]), name


def _rows(engine, table) -> list[tuple]:
    with engine.connect() as conn:
        rows = sorted(map(tuple, conn.execute(sa.select(table)).fetchall()), key=repr)
    engine.dispose()
    return rows


def _never_above_host_vcpus(spans: pl.DataFrame) -> bool:
    """Sweep +vcpus at start, -vcpus at end (ends first at ties) per host; compare with ``hv``."""
    deltas = pl.concat([spans.select("hypervisor_hostname", "hv", t=pl.col("start"), d=pl.col("vcpus")),
                        spans.select("hypervisor_hostname", "hv", t=pl.col("end"), d=-pl.col("vcpus"))])
    use = deltas.sort("hypervisor_hostname", "t", "d").with_columns(
        use=pl.col("d").cum_sum().over("hypervisor_hostname"))
    return bool((use["use"] <= use["hv"]).all())


def test_kvm_site_packs_vms_without_oversubscription(tmp_path):
    site = generate_site(f"sqlite:///{tmp_path}/main.sqlite", hosts=6, years=0.25, seed=3, kind="kvm")
    spans = pl.read_parquet(site.truth_dir / "truth_spans.parquet")
    occupied = spans.filter(level="occupied").with_columns(pl.col("end").fill_null(site.end))
    assert occupied.height > 0 and occupied["booking"].unique().sort().to_list() == ["ondemand", "reservation"]
    # nodes = vcpus / host vcpus, from the host's own total span
    host_vcpus = spans.filter(level="total").group_by("hypervisor_hostname").agg(pl.col("vcpus").first().alias("hv"))
    joined = occupied.join(host_vcpus, on="hypervisor_hostname")
    assert (joined["nodes"] - joined["vcpus"] / joined["hv"]).abs().max() < 1e-9
    # neither on-demand VMs nor reserved slots ever exceed a host's vcpus
    assert _never_above_host_vcpus(joined.filter(booking="ondemand"))
    committed = spans.filter(level="committed").with_columns(pl.col("end").fill_null(site.end))
    assert committed.height > 0
    assert _never_above_host_vcpus(committed.join(host_vcpus, on="hypervisor_hostname"))
    engine = open_engine(f"sqlite:///{tmp_path}/main.sqlite")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM nova.compute_nodes WHERE vcpus = 0")).scalar() == 0
        flavors = conn.execute(sa.text("SELECT count(*) FROM nova_api.request_specs WHERE spec LIKE "
                                       "'%\"name\": \"reservation:%'")).scalar()
        assert flavors > 0
        assert conn.execute(sa.text("SELECT count(*) FROM blazar.instance_reservations")).scalar() > 0


def test_unreachable_server_is_one_clear_line(tmp_path, capsys):
    from exporter.cli import main
    from tests.support import free_port

    url = f"mysql+pymysql://root:secret-pw@127.0.0.1:{free_port()}/"
    with pytest.raises(SystemExit) as exit_info:
        main(["generate-site", "--db-url", url, "--hosts", "2", "--years", "0.1", "--truth-dir", str(tmp_path)])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "cannot connect" in err and "secret-pw" not in err and "Traceback" not in err


@pytest.mark.parametrize("kind", ["baremetal", "kvm"])
def test_request_specs_name_the_true_reservation(tmp_path, kind):
    site = generate_site(f"sqlite:///{tmp_path}/main.sqlite", hosts=6, years=0.2, seed=4, kind=kind, quirks=set())
    engine = open_engine(site.url)
    with engine.connect() as conn:
        specs = conn.execute(sa.text("SELECT instance_uuid, spec FROM nova_api.request_specs")).fetchall()
    engine.dispose()
    linked = {}
    for uuid, text in specs:
        data = json.loads(text)["nova_object.data"]
        hint = (data["scheduler_hints"] or {}).get("reservation", [None])[0]
        flavor = data["flavor"]["nova_object.data"]["name"]
        linked[uuid] = hint or (flavor.split(":", 1)[1] if flavor.startswith("reservation:") else None)
    occupied = pl.read_parquet(site.truth_dir / "truth_spans.parquet").filter(level="occupied")
    assert occupied.height > 0
    for uuid, reservation in occupied.select("entity_id", "reservation_id").iter_rows():
        assert linked[uuid] == reservation

"""Knowledge time on spans (known_from / known_until): against the generator's truth for
allocations and instances, and by hand for rule and inferred spans."""

from __future__ import annotations

import datetime as dt

import polars as pl

from exporter.columns import SPAN_SCHEMA, conform
from exporter.reconstruct.knowledge import with_knowledge_times
from exporter.reconstruct.rulesfile import Provenance, Rule
from tests.reconstruct.test_leadtime import site  # noqa: F401  (the generated sites, module fixture)

D = dt.datetime(2024, 1, 1)
H = dt.timedelta(hours=1)


def test_committed_spans_are_known_while_their_allocation_row_exists(site):  # noqa: F811
    generated, span_set, truth_dir = site
    truth = pl.read_parquet(truth_dir / "truth_bookings.parquet")
    committed = span_set.spans.filter(pl.col("level").is_in(["committed", "maintenance"]))
    joined = committed.join(truth, left_on="source_id", right_on="allocation_id", suffix="_truth")
    assert joined.height == committed.height > 10
    assert joined["known_from"].to_list() == joined["known_from_truth"].to_list()
    assert joined["known_until"].to_list() == joined["known_until_truth"].fill_null(generated.end).to_list()


def test_instance_spans_are_known_from_the_instances_creation(site):  # noqa: F811
    generated, span_set, truth_dir = site
    truth = (pl.read_parquet(truth_dir / "truth_spans.parquet").filter(pl.col("level") == "occupied")
             .group_by("entity_id").agg(pl.col("start").min().alias("created")))
    occupied = span_set.spans.filter(pl.col("level") == "occupied").join(truth, on="entity_id")
    assert occupied.height > 10
    assert (occupied["known_from"] == occupied["created"]).all()
    assert (occupied["known_until"] <= generated.end).all()


def test_rule_and_inferred_spans_by_hand():
    snapshot = D + 100 * H
    spans = conform(pl.DataFrame({
        "source_table": ["nova.instances", "nova.instances", "rules", "inference", "inference"],
        "source_id": ["1", "2", "r1", f"res@h1@{D:%Y%m%dT%H%M%S}", "h1@x"],
        "rule_id": [None, "r1", "r1", None, None],
        "reservation_id": [None, None, None, "res", None],
        "hypervisor_hostname": ["h0", "h0", "h0", "h1", "h1"],
        "start": [D] * 5, "end": [D + H] * 5}), SPAN_SCHEMA)
    frames = {"nova.instances": pl.LazyFrame({"id": [1, 2], "created_at": [D - 2 * H, D - 3 * H],
                                              "deleted_at": [D + 5 * H, None]})}
    instances = pl.DataFrame({"reservation_id": ["res", "res", "other"], "hypervisor_hostname": ["h1", "h1", "h1"],
                              "created_at": [D + 2 * H, D + H, D - 9 * H], "deleted_at": [D + 7 * H, D + 8 * H, None],
                              "booking": ["reservation"] * 3, "rejection_reason": [None] * 3},
                             schema_overrides={"rejection_reason": pl.String})
    rule = Rule(id="r1", site="s", action="add_host", match=(), start=None, end=None, confidence="direct",
                provenance=Provenance(author="op", date=dt.date(2023, 5, 6), reason="inventory"))
    known = with_knowledge_times(spans, {k: v for k, v in frames.items()}, instances=instances, rules=(rule,),
                                 snapshot_time=snapshot)
    assert known.columns == list(SPAN_SCHEMA)
    assert known.select("known_from", "known_until").rows() == [
        (D - 2 * H, D + 5 * H),  # a row: created_at .. deleted_at
        (dt.datetime(2023, 5, 6), snapshot),  # changed by a rule: the rule's date, still known
        (dt.datetime(2023, 5, 6), snapshot),  # added by a rule
        (D + H, D + 8 * H),  # inferred commitment: its reservation's instances on the host
        (D - 9 * H, snapshot),  # inferred reservable host: any reserved instance on it, one still there
    ]


def test_an_inferred_span_is_dated_only_by_the_instances_it_was_inferred_from():
    # Two rows name reservation res on h1: a usable one [D + H, D + 8 H) and one rejected (never
    # launched) created earlier and deleted later. Inference reads only the usable one, so the
    # inferred span is known exactly while that one is shown.
    spans = conform(pl.DataFrame({
        "source_table": ["inference"], "source_id": [f"res@h1@{D:%Y%m%dT%H%M%S}"], "rule_id": [None],
        "reservation_id": ["res"], "hypervisor_hostname": ["h1"], "start": [D + H], "end": [D + 8 * H]}), SPAN_SCHEMA)
    instances = pl.DataFrame({"reservation_id": ["res", "res"], "hypervisor_hostname": ["h1", "h1"],
                              "created_at": [D + H, D - 5 * H], "deleted_at": [D + 8 * H, D + 20 * H],
                              "booking": ["reservation", "reservation"],
                              "rejection_reason": [None, "never_effective"]})
    known = with_knowledge_times(spans, {}, instances=instances, rules=(), snapshot_time=D + 100 * H)
    assert known.select("known_from", "known_until").rows() == [(D + H, D + 8 * H)]


def test_audit_rows_are_matched_on_their_audit_id_and_known_from_their_trigger_time():
    """A mask span from the trigger audit table names its row by ``audit_id``; the table's ``id`` is
    the audited computehost's, and its ``created_at`` (early audit shape) the computehost's creation."""
    audit = "openstack_audit.audit_blazar_computehosts"
    spans = conform(pl.DataFrame({"source_table": [audit, audit], "source_id": ["7", "8"],
                                  "hypervisor_hostname": ["h1", "h1"], "start": [D] * 2, "end": [D + H] * 2}),
                    SPAN_SCHEMA)
    frames = {audit: pl.LazyFrame({"audit_id": [7, 8, 9], "id": [8, 8, 7],
                                   "audit_changed_at": [D + 2 * H, D + 3 * H, D + 4 * H],
                                   "created_at": [D - 50 * H] * 3})}
    known = with_knowledge_times(spans, frames, instances=pl.DataFrame(
        schema={"reservation_id": pl.String, "hypervisor_hostname": pl.String, "created_at": pl.Datetime("us"),
                "deleted_at": pl.Datetime("us")}), rules=(), snapshot_time=D + 100 * H)
    assert known.select("known_from", "known_until").rows() == [(D + 2 * H, D + 100 * H), (D + 3 * H, D + 100 * H)]


def test_rows_are_matched_within_their_own_table_and_a_repeated_key_takes_its_first_row():
    """Rows are looked up one table at a time (the same id in another table is another row), and a
    key found on several rows of a table (a dump with a repeated primary key) takes the first."""
    spans = conform(pl.DataFrame({"source_table": ["nova.instances", "blazar.computehost_allocations",
                                                   "nova.instances", "nova.instances", "nova.compute_nodes"],
                                  "source_id": ["1", "1", "2", "3", "1"], "start": [D] * 5, "end": [D + H] * 5}),
                    SPAN_SCHEMA)
    frames = {"nova.instances": pl.LazyFrame({"id": [1, 2, 1], "created_at": [D - H, D - 2 * H, D - 5 * H],
                                              "deleted_at": [None, D + 3 * H, D + 4 * H]}),
              "blazar.computehost_allocations": pl.LazyFrame({"id": ["1"], "created_at": [D - 7 * H],
                                                              "deleted_at": [D + 9 * H]})}
    known = with_knowledge_times(spans, frames, instances=pl.DataFrame(
        schema={"reservation_id": pl.String, "hypervisor_hostname": pl.String, "created_at": pl.Datetime("us"),
                "deleted_at": pl.Datetime("us")}), rules=(), snapshot_time=D + 100 * H)
    assert known.select("known_from", "known_until").rows() == [
        (D - H, D + 100 * H),  # the first of instance 1's two rows, still there
        (D - 7 * H, D + 9 * H),  # allocation 1: its own table's row
        (D - 2 * H, D + 3 * H),
        (None, D + 100 * H),  # no row: unknown since when, known at the snapshot
        (None, D + 100 * H),  # a table not in the snapshot
    ]


def test_an_integer_key_matches_only_the_text_that_spells_it():
    """Rows with integer (or float) keys are found by the span ids that are the key's text ("7"),
    not by another spelling of the same number ("07", "+7", " 7", "7.0"), as a text key would be."""
    ids = ["7", "07", "+7", " 7", "7.0", "-3", "x", None, "9223372036854775807"]
    spans = conform(pl.DataFrame({"source_table": ["nova.instances"] * len(ids), "source_id": ids,
                                  "start": [D] * len(ids), "end": [D + H] * len(ids)}), SPAN_SCHEMA)
    no_instances = pl.DataFrame(schema={"reservation_id": pl.String, "hypervisor_hostname": pl.String,
                                        "created_at": pl.Datetime("us"), "deleted_at": pl.Datetime("us")})
    for key in ([7, -3, 9223372036854775807], [7.0, -3.0, None]):
        frames = {"nova.instances": pl.LazyFrame({"id": key, "created_at": [D - H, D - 2 * H, D - 3 * H],
                                                  "deleted_at": [None, None, None]})}
        known = with_knowledge_times(spans, frames, instances=no_instances, rules=(), snapshot_time=D + 100 * H)
        found = [D - H, None, None, None, None, D - 2 * H, None, None, D - 3 * H if key[2] else None]
        assert known["known_from"].to_list() == found, key

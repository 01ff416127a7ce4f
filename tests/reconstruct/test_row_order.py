"""Which row the reconstruction takes must not follow the order its rows arrive in (docs/semantics.md)."""

from __future__ import annotations

import itertools

import polars as pl

from exporter.columns import BOOKING_RESERVATION
from exporter.reconstruct import inference
from tests.adapters.tables import t


def test_a_commitment_whose_lease_is_gone_takes_its_earliest_instances_project_in_any_row_order():
    # Three reserved instances of one reservation on one host, from two projects: the earliest (by
    # start) is p2's; two start together, where the lower row id as text wins ("10" before "9").
    instances = pl.DataFrame({
        "source_table": ["nova.instances"] * 3, "source_id": ["9", "10", "3"],
        "project_id": ["p1", "p2", "p3"], "start": [t("01-01 00:00"), t("01-01 00:00"), t("01-02 00:00")],
        "end": [t("01-03 00:00")] * 3, "reservation_id": ["r1"] * 3, "hypervisor_hostname": ["h1"] * 3,
        "booking": [BOOKING_RESERVATION] * 3, "rejection_reason": [None] * 3,
        "vcpus": [1.0] * 3, "memory_mb": [1.0] * 3, "disk_gb": [1.0] * 3})
    for order in itertools.permutations(range(3)):
        made = inference.commitments(instances[list(order)], {}, maintenance_projects=())
        assert made.get_column("project_id").to_list() == ["p2"], order

"""The hardware model of a device (docs/semantics.md "Hardware model"): each capability row is named
through its own id's table."""

from __future__ import annotations

import datetime as dt

import polars as pl

from exporter.adapters import blazar_devices

D = dt.datetime(2024, 3, 1)


def test_a_capability_id_is_not_named_through_a_property_with_the_same_id():
    # resource_properties 5 is machine_name, extra_capabilities 5 is gpu_vendor: row x1 (property 5)
    # is the model "raspberrypi4-64"; the newer row x2 (capability 5) is a gpu_vendor, no model.
    tables = {
        "blazar.devices": pl.LazyFrame({"id": ["d1"]}),
        "blazar.device_extra_capabilities": pl.LazyFrame({
            "id": ["x1", "x2"], "device_id": ["d1", "d1"], "capability_id": [None, "5"], "property_id": ["5", None],
            "capability_value": ["raspberrypi4-64", "nvidia"], "created_at": [D, D + dt.timedelta(hours=1)]},
            schema_overrides={"capability_id": pl.String, "property_id": pl.String}),
        "blazar.resource_properties": pl.LazyFrame({"id": ["5"], "property_name": ["machine_name"]}),
        "blazar.extra_capabilities": pl.LazyFrame({"id": ["5"], "capability_name": ["gpu_vendor"]}),
    }
    assert blazar_devices.device_models(tables).collect().rows() == [("d1", "raspberrypi4-64")]


def test_machine_name_rows_written_at_one_moment_go_to_the_higher_row_id_in_row_id_order():
    # rows "9" and "10" at one moment: "10" is the higher id (as text "9" would be), in any row order
    rows = pl.DataFrame({"id": ["9", "10"], "device_id": ["d1", "d1"], "capability_id": [None, None],
                         "property_id": ["5", "5"], "capability_value": ["pi-old", "pi-new"], "created_at": [D, D]},
                        schema_overrides={"capability_id": pl.String})
    for order in ([0, 1], [1, 0]):
        tables = {"blazar.devices": pl.LazyFrame({"id": ["d1"]}),
                  "blazar.device_extra_capabilities": rows[order].lazy(),
                  "blazar.resource_properties": pl.LazyFrame({"id": ["5"], "property_name": ["machine_name"]})}
        assert blazar_devices.device_models(tables).collect().rows() == [("d1", "pi-new")], order

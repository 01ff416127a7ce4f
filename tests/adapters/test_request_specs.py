"""Which reservation an instance's request spec names: scheduler hint, else flavor name."""

from __future__ import annotations

import json

import polars as pl

from exporter.adapters.request_specs import reservation_links
from tests.adapters.tables import request_specs, spec


def links(*rows):
    return dict(reservation_links(request_specs(*rows)).collect().iter_rows())


def test_hint_wins_over_flavor_name_and_plain_flavors_are_on_demand():
    assert links({"instance_uuid": "a", "spec": spec(hint="R1", flavor="reservation:R2")},
                 {"instance_uuid": "b", "spec": spec(flavor="reservation:R2")},
                 {"instance_uuid": "c", "spec": spec()}) == {"a": "R1", "b": "R2"}


def test_unusual_key_order_falls_back_to_json_parsing():
    # extra_specs (a nested object) before the name defeats the fast pattern; JSON still finds it.
    data = {"nova_object.data": {"scheduler_hints": {}, "flavor": {"nova_object.data": {
        "extra_specs": {"aggregate_instance_extra_specs:reservation": "R3"}, "name": "reservation:R3"}}}}
    assert links({"instance_uuid": "a", "spec": json.dumps(data)}) == {"a": "R3"}


def test_garbage_or_empty_hints_name_no_reservation():
    assert links({"instance_uuid": "a", "spec": "not json, mentions reservation"},
                 {"instance_uuid": "b", "spec": spec(hint=" ")}) == {}


def test_integer_uuid_columns_are_read_as_text():
    frame = pl.DataFrame({"instance_uuid": [1], "spec": [spec(hint="R1")]})
    assert dict(reservation_links(frame).collect().iter_rows()) == {"1": "R1"}


def test_a_hint_in_any_spec_of_an_instance_wins_over_a_flavor_name_in_an_earlier_one():
    assert links({"instance_uuid": "a", "spec": spec(flavor="reservation:R2")},
                 {"instance_uuid": "a", "spec": spec(hint="R1")},
                 {"instance_uuid": "b", "spec": spec(flavor="reservation:R3")},
                 {"instance_uuid": "b", "spec": spec(flavor="reservation:R4")}) == {"a": "R1", "b": "R3"}


def test_a_hint_only_json_parsing_reads_still_wins_over_a_flavor_name_in_the_same_spec():
    # A nested object before the hint defeats the fast pattern; the flavor's pattern still matches.
    data = {"nova_object.data": {"scheduler_hints": {"meta": {"k": "v"}, "reservation": ["r-hint"]},
                                 "flavor": {"nova_object.data": {"name": "reservation:r-flavor"}}}}
    assert links({"instance_uuid": "a", "spec": json.dumps(data)}) == {"a": "r-hint"}


def test_a_hint_only_json_parsing_reads_wins_over_a_flavor_name_in_another_spec():
    hidden = {"nova_object.data": {"scheduler_hints": {"meta": {}, "reservation": ["r-hint"]},
                                   "flavor": {"nova_object.data": {"name": "baremetal"}}}}
    assert links({"instance_uuid": "a", "spec": spec(flavor="reservation:r-flavor")},
                 {"instance_uuid": "a", "spec": json.dumps(hidden)}) == {"a": "r-hint"}

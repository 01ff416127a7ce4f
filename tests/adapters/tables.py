"""Tiny hand-built snapshot tables for adapter tests: one helper per table, defaults filled in.

Times are given as "MM-DD HH:MM" strings in 2020 (``t("01-01 00:00")``) to keep cases readable.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl

SNAPSHOT = dt.datetime(2020, 12, 31)
HOUR = dt.timedelta(hours=1)


def t(text: str | None) -> dt.datetime | None:
    """``"03-01 12:00"`` -> 2020-03-01 12:00 (None stays None)."""
    return None if text is None else dt.datetime.strptime(f"2020-{text}", "%Y-%m-%d %H:%M")


def _frame(rows: list[dict], schema: dict) -> pl.DataFrame:
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema, orient="row")


TIME = pl.Datetime("us")


def compute_nodes(*rows: dict) -> pl.DataFrame:
    defaults = {"hypervisor_type": "ironic", "vcpus": 48, "memory_mb": 196608, "local_gb": 240, "deleted_at": None}
    schema = {"id": pl.Int64, "host": pl.String, "hypervisor_hostname": pl.String, "hypervisor_type": pl.String,
              "vcpus": pl.Int64, "memory_mb": pl.Int64, "local_gb": pl.Int64, "created_at": TIME, "deleted_at": TIME}
    return _frame([{**defaults, **r} for r in rows], schema)


def services(*rows: dict) -> pl.DataFrame:
    defaults = {"binary": "nova-compute", "disabled": 0, "deleted_at": None}
    schema = {"id": pl.Int64, "host": pl.String, "binary": pl.String, "disabled": pl.Int64, "created_at": TIME,
              "deleted_at": TIME}
    return _frame([{"id": i, **defaults, **r} for i, r in enumerate(rows, start=1)], schema)


def computehosts(*rows: dict) -> pl.DataFrame:
    defaults = {"hypervisor_type": "ironic", "vcpus": 48, "memory_mb": 196608, "local_gb": 240, "deleted_at": None}
    schema = {"id": pl.String, "hypervisor_hostname": pl.String, "hypervisor_type": pl.String, "vcpus": pl.Int64,
              "memory_mb": pl.Int64, "local_gb": pl.Int64, "created_at": TIME, "deleted_at": TIME}
    return _frame([{**defaults, **r} for r in rows], schema)


def capabilities(*rows: dict) -> pl.DataFrame:
    schema = {"id": pl.String, "computehost_id": pl.String, "capability_name": pl.String,
              "capability_id": pl.String, "property_id": pl.String, "capability_value": pl.String,
              "created_at": TIME}
    return _frame([{"id": str(i), **r} for i, r in enumerate(rows)], schema)


def leases(*rows: dict) -> pl.DataFrame:
    schema = {"id": pl.String, "project_id": pl.String, "start_date": TIME, "end_date": TIME, "deleted_at": TIME}
    return _frame([{"project_id": "p1", **r} for r in rows], schema)


def reservations(*rows: dict) -> pl.DataFrame:
    schema = {"id": pl.String, "lease_id": pl.String, "resource_id": pl.String, "resource_type": pl.String}
    return _frame([{"resource_type": "physical:host", **r} for r in rows], schema)


def allocations(*rows: dict) -> pl.DataFrame:
    schema = {"id": pl.String, "compute_host_id": pl.String, "reservation_id": pl.String,
              "created_at": TIME, "deleted_at": TIME}
    return _frame(list(rows), schema)


def instances(*rows: dict) -> pl.DataFrame:
    defaults = {"vcpus": 48, "memory_mb": 196608, "root_gb": 240, "ephemeral_gb": 0, "project_id": "p1"}
    schema = {"id": pl.Int64, "uuid": pl.String, "project_id": pl.String, "node": pl.String, "vcpus": pl.Int64,
              "memory_mb": pl.Int64, "root_gb": pl.Int64, "ephemeral_gb": pl.Int64, "created_at": TIME,
              "launched_at": TIME, "terminated_at": TIME, "deleted_at": TIME}
    return _frame([{**defaults, **r} for r in rows], schema)


def actions(*rows: dict) -> pl.DataFrame:
    schema = {"id": pl.Int64, "instance_uuid": pl.String, "action": pl.String, "start_time": TIME,
              "message": pl.String}
    return _frame(list(rows), schema)


def events(*rows: dict) -> pl.DataFrame:
    schema = {"id": pl.Int64, "action_id": pl.Int64, "event": pl.String, "start_time": TIME,
              "finish_time": TIME, "result": pl.String}
    return _frame([{"id": i, **r} for i, r in enumerate(rows)], schema)


def spec(*, hint: str | None = None, flavor: str = "baremetal") -> str:
    """A request_specs.spec JSON text with an optional reservation hint and a flavor name."""
    hints = {"reservation": [hint]} if hint else {}
    return json.dumps({"nova_object.name": "RequestSpec", "nova_object.data": {
        "scheduler_hints": hints,
        "flavor": {"nova_object.name": "Flavor", "nova_object.data": {"name": flavor}}}})


def request_specs(*rows: dict) -> pl.DataFrame:
    schema = {"id": pl.Int64, "instance_uuid": pl.String, "spec": pl.String}
    return _frame([{"id": i, **r} for i, r in enumerate(rows)], schema)


def tables(**named: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Keyword names -> snapshot names: ``compute_nodes=`` -> ``nova.compute_nodes`` etc."""
    schema_of = {
        "compute_nodes": "nova", "services": "nova", "instances": "nova", "instance_actions": "nova", "instance_actions_events": "nova",
        "request_specs": "nova_api", "computehosts": "blazar", "computehost_extra_capabilities": "blazar",
        "extra_capabilities": "blazar", "resource_properties": "blazar", "leases": "blazar",
        "reservations": "blazar", "computehost_allocations": "blazar", "instance_reservations": "blazar",
    }
    result = {f"{schema_of[k]}.{k}": v for k, v in named.items()}
    result.setdefault("nova.instances", instances())
    result.setdefault("nova.compute_nodes", compute_nodes())
    return result

"""Nova instances: occupied and stopped spans, booked against reservations or on-demand."""

from __future__ import annotations

from exporter.sources import TIMESTAMPS, SourceTable

_INSTANCE_COLUMNS = (
    "id", "uuid", "user_id", "project_id", "host", "node", "vcpus", "memory_mb", "root_gb",
    "ephemeral_gb", "instance_type_id", "vm_state", "power_state", "task_state", "launched_at",
    "terminated_at", "availability_zone", *TIMESTAMPS,
)
_ACTION_COLUMNS = ("id", "instance_uuid", "action", "request_id", "start_time", "finish_time",
                   "message", *TIMESTAMPS)
_EVENT_COLUMNS = ("id", "action_id", "event", "start_time", "finish_time", "result", "host",
                  *TIMESTAMPS)

READS = (
    SourceTable("nova", "instances", _INSTANCE_COLUMNS,
                required=("id", "uuid", "created_at", "node", "launched_at")),
    SourceTable("nova", "instance_actions", _ACTION_COLUMNS, required=("id", "instance_uuid", "action")),
    SourceTable("nova", "instance_actions_events", _EVENT_COLUMNS,
                required=("id", "action_id", "event", "result")),
    SourceTable("nova_api", "request_specs", ("id", "instance_uuid", "spec", "created_at", "updated_at"),
                required=("instance_uuid", "spec"),
                description="scheduler hints / flavor name link instances to Blazar reservations"),
    SourceTable("nova", "shadow_instances", _INSTANCE_COLUMNS, optional=True),
    SourceTable("nova", "shadow_instance_actions", _ACTION_COLUMNS, optional=True),
    SourceTable("nova", "shadow_instance_actions_events", _EVENT_COLUMNS, optional=True),
)

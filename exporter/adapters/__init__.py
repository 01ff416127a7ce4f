"""Domain adapters: one module per source family, each turning snapshot tables into spans.

Every module here declares ``READS`` (the tables and columns it needs). Register a new module
by adding it to ``ADAPTER_MODULES``; extract and grants pick it up from there.
"""

from __future__ import annotations

from exporter.adapters import blazar_hosts, blazar_leases, extras, legacy_usage, nova_hosts, nova_instances

ADAPTER_MODULES = (nova_hosts, blazar_hosts, blazar_leases, nova_instances, legacy_usage, extras)

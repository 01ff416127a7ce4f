"""Typed errors raised by the library; only the CLI turns them into one-line messages.

Every message must be safe to print: no passwords, no tracebacks needed to understand it.
"""

from __future__ import annotations


class UsageExporterError(Exception):
    """Base class for all errors the CLI reports as one clear line."""

    exit_code = 1


class ConfigError(UsageExporterError):
    """The configuration file or a command-line value is invalid."""

    exit_code = 2


class DatabaseError(UsageExporterError):
    """A database could not be reached or refused us.

    ``kind`` is one of ``connection_error``, ``auth_error``, ``permission_denied``,
    ``missing``, ``timeout``, ``query_error`` (also used as a metric label by the live exporter).
    """

    def __init__(self, message: str, *, kind: str = "connection_error") -> None:
        super().__init__(message)
        self.kind = kind


class SnapshotError(UsageExporterError):
    """A snapshot directory or one of its files is missing, corrupt or inconsistent."""


class SchemaError(UsageExporterError):
    """A source table cannot be read as the Nova/Blazar table the tool expects (a required column
    missing, a column stored in the wrong type, an essential table empty); names table.column."""


class InvariantViolation(UsageExporterError):
    """A conservation invariant (rows or hours) does not hold; the numbers must not be used."""

    exit_code = 3

    def __init__(self, message: str, *, details: object = None) -> None:
        super().__init__(message)
        self.details = details


class TimelineError(UsageExporterError):
    """A timeline is malformed or empty and cannot be exported."""


class ToolMissing(UsageExporterError):
    """An external tool (promtool, prometheus) is not installed."""


class StoreError(UsageExporterError):
    """A metrics store (VictoriaMetrics) cannot be reached, refused data or kept other samples than sent."""


class OutputError(UsageExporterError):
    """An output directory cannot be written or replaced safely."""


class DiskFull(OutputError):
    """The disk filled up while writing an output; nothing partial was left behind."""

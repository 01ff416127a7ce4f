"""Least-privilege GRANT statements for the read-only database user, per table or per column.

Derived from the adapters' declarations (``declared_tables()``: every table and column the tool
reads), never from a second list. Per-column grants keep columns the tool never reads out of the
user's reach (``instances.user_data``, ``key_data``, Zun's ``container.environment``).
"""

from __future__ import annotations

from collections.abc import Mapping

from exporter.errors import ConfigError
from exporter.adapters.declared import SourceTable
from exporter.adapters.registry import declared_tables


def create_user_guidance(user: str, host: str) -> list[str]:
    """SQL comments telling the administrator to create the account first (never with a password here)."""
    return ["-- Create the account first, as an administrator, with a password of your choice:",
            f"--   CREATE USER {account(user, host)} IDENTIFIED BY '...';",
            "-- then run the statements below (mysql --force: see the note on optional tables/columns)."]


def table_grants(user: str, host: str, databases: Mapping[str, str] | None = None) -> list[tuple[SourceTable, str]]:
    """``GRANT SELECT ON `db`.`table` TO 'user'@'host'`` per declared table, required tables first."""
    to = account(user, host)
    return [(source, f"GRANT SELECT ON {_target(source, databases)} TO {to}") for source in _ordered()]


def column_grants(user: str, host: str, databases: Mapping[str, str] | None = None) -> list[tuple[SourceTable, str]]:
    """Per declared table ``GRANT REFERENCES``, then ``GRANT SELECT (`column`)`` per declared column.

    One statement per column: MySQL/MariaDB refuse a whole GRANT naming one column a table lacks,
    and older releases lack some declared columns, so each column must succeed or fail alone.
    Column privileges alone do not allow ``SHOW CREATE TABLE``, which reflection needs (the column
    types); the table-level REFERENCES privilege does, and reads no data (it only lets an account
    that may create tables point foreign keys at this one, and this account may create nothing).
    """
    to = account(user, host)
    grants = []
    for source in _ordered():
        target = _target(source, databases)
        grants.append((source, f"GRANT REFERENCES ON {target} TO {to}"))
        grants += [(source, f"GRANT SELECT ({_identifier(column)}) ON {target} TO {to}") for column in source.columns]
    return grants


def account(user: str, host: str) -> str:
    if not user or not host:
        raise ConfigError("grants need a user and a host")
    return f"{_sql_string(user)}@{_sql_string(host)}"


def _ordered() -> list[SourceTable]:
    return sorted(declared_tables(), key=lambda source: source.optional)


def _target(source: SourceTable, databases: Mapping[str, str] | None) -> str:
    return f"{_identifier((databases or {}).get(source.schema, source.schema))}.{_identifier(source.table)}"


def _identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"

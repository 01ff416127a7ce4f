"""Column types and shapes the generator's tables share (real DDL: openstack-schema.md §2-§4).

Nova soft delete is ``deleted INT`` (0 live, = id when deleted); the Chameleon Blazar fork uses
``deleted VARCHAR(36) NULL``. MySQL-only types are variants, so the tables render on SQLite too.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

MEDIUMTEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
TINYINT1 = sa.Integer().with_variant(mysql.TINYINT(1), "mysql", "mariadb")
DATETIME = sa.DateTime()


def varchar(length: int = 255) -> sa.String:
    return sa.String(length)


def nova_timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", DATETIME, nullable=True),
        sa.Column("updated_at", DATETIME, nullable=True),
        sa.Column("deleted_at", DATETIME, nullable=True),
        sa.Column("deleted", sa.Integer, nullable=True, default=0),
    ]


def blazar_timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", DATETIME, nullable=True),
        sa.Column("updated_at", DATETIME, nullable=True),
        sa.Column("deleted", sa.String(36), nullable=True),
        sa.Column("deleted_at", DATETIME, nullable=True),
    ]


def uuid_pk() -> sa.Column:
    return sa.Column("id", sa.String(36), primary_key=True)


def int_pk() -> sa.Column:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)

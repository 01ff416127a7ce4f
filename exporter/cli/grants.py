"""``usage-exporter grants``: the least-privilege GRANT statements for a read-only DB user."""

from __future__ import annotations

import click

from exporter.cli.options import config_option
from exporter.config import load_config
from exporter.extract import grant_statements, prefixed_databases
from exporter.sources import declared_tables


@click.command("grants")
@click.option("--user", required=True, help="Database user the exporter connects as.")
@click.option("--host", required=True, help="Host part of the account, e.g. 10.0.0.5 or '%'.")
@click.option("--site", "site_name", default=None, metavar="NAME",
              help="Use this configured site's physical database names.")
@click.option("--db-prefix", default=None, metavar="P", help="Physical database names are P<schema>.")
@config_option
def command(user, host, site_name, db_prefix, config_path) -> None:
    """Print GRANT SELECT statements for exactly the tables `extract` reads.

    Pipe them into the mysql client as an administrator. Statements for optional tables come
    last: MySQL/MariaDB refuse a GRANT on a table that does not exist, so run with
    `mysql --force` (or drop those lines) on sites without them.
    """
    databases = load_config(config_path).site(site_name, resolve_env=False).databases if site_name else {}
    if db_prefix:
        databases = {**databases, **prefixed_databases(db_prefix)}
    statements = grant_statements(user, host, databases)
    required = sum(1 for source in declared_tables() if not source.optional)
    click.echo(f"-- read-only access for usage-exporter: {len(statements)} tables")
    for index, statement in enumerate(statements):
        if index == required:
            click.echo("-- optional tables (a GRANT fails harmlessly if the table does not exist):")
        click.echo(f"{statement};")

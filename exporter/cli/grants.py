"""``usage-exporter grants``: the least-privilege GRANT statements for a read-only DB user."""

from __future__ import annotations

import click

from exporter.cli.options import config_option


@click.command("grants")
@click.option("--user", required=True, help="Database user the exporter connects as.")
@click.option("--host", required=True, help="Host part of the account, e.g. 10.0.0.5 or '%'.")
@click.option("--site", "site_name", default=None, metavar="NAME",
              help="Use this configured site's physical database names.")
@click.option("--db-prefix", default=None, metavar="P", help="Physical database names are P<schema>.")
@click.option("--columns", is_flag=True,
              help="Grant only the columns the tool reads (one statement per column), so the user cannot "
                   "read e.g. instances.user_data or key_data. Recommended.")
@config_option
def command(user, host, site_name, db_prefix, columns, config_path) -> None:
    """Print GRANT SELECT statements for exactly the tables (or columns) `extract` and `serve` read.

    Create the user first (the output starts with the CREATE USER to run), then pipe the
    statements into the mysql client as an administrator. Statements for optional tables come
    last: MySQL/MariaDB refuse a GRANT on a table (or column) that does not exist, so run with
    `mysql --force`; those failures are harmless.

    \b
    Example:
      usage-exporter grants --user usage_ro --host 10.0.0.5 --site chi_uc --columns \\
          | mysql --force -u root -p
    """
    # imported here, not at the top: `usage-exporter --help` loads every subcommand module
    from exporter.config import load_config, prefixed_databases
    from exporter.extract.grants import column_grants, create_user_guidance, table_grants

    databases = load_config(config_path).site(site_name, resolve_env=False).databases if site_name else {}
    if db_prefix:
        databases = {**databases, **prefixed_databases(db_prefix)}
    grants = (column_grants if columns else table_grants)(user, host, databases)
    tables = len({source.name for source, _ in grants})
    for line in create_user_guidance(user, host):
        click.echo(line)
    click.echo(f"-- read-only access for usage-exporter: {tables} tables"
               + (f", {len(grants) - tables} columns (one GRANT per column; REFERENCES per table only "
                  "lets reflection read the table definition, no data)" if columns else ""))
    optional_started = False
    for source, statement in grants:
        if source.optional and not optional_started:
            click.echo("-- optional tables (a GRANT fails harmlessly if the table or column does not exist):")
            optional_started = True
        click.echo(f"{statement};")

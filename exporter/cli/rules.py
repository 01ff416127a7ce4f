"""``usage-exporter rules``: operators' manual rules (docs/rules.md)."""

from __future__ import annotations

from pathlib import Path

import click

from exporter.cli.options import config_option, snapshot_time_option


@click.group("rules")
def command() -> None:
    """Operators' manual rules: exclude evidence, override a host's pool or node type, add
    maintenance or a forgotten host (format: docs/rules.md; example: etc/rules.yaml)."""


@command.command("check")
@click.argument("snapshot_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--site", "site_name", required=True, metavar="NAME", help="Site whose rules are checked.")
@config_option
@click.option("--rules", "rules_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Rules file [default: the site's rules: from the config].")
@snapshot_time_option
@click.option("--quiet", is_flag=True, help="No progress bars.")
def check(snapshot_dir, site_name, config_path, rules_path, snapshot_time, quiet) -> None:
    """Print, per rule, what it would change in SNAPSHOT_DIR: rows and hours excluded, overridden
    and added or changed, per level. Nothing is written.

    Without SNAPSHOT_DIR the newest snapshot under <data_dir>/<site>/ from the config is used.

    \b
    Examples:
      usage-exporter rules check --site chi_uc --config etc/sites.yaml
      usage-exporter rules check --site demo --rules my-rules.yaml data/demo/20261121T230000Z
    """
    from exporter.cli.reconstruct import resolve_options
    from exporter.progress import for_cli
    from exporter.reconstruct.rules_check import STAGES, check_rules, check_text

    options, snapshot_dir = resolve_options(snapshot_dir, site_name, config_path, start=None, end=None,
                                            snapshot_time=snapshot_time,
                                            rules_path=rules_path)
    click.echo(check_text(check_rules(snapshot_dir, options, progress=for_cli(quiet=quiet, stages=len(STAGES)))))

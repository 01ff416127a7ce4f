"""The ``--db-url / --site / --db-prefix`` options shared by commands that talk to a site."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from exporter.config import Config, SiteConfig, load_config, prefixed_databases
from exporter.errors import ConfigError

ADHOC_SITE = "default"


def site_options(function):
    """Add --db-url, --site and --db-prefix to a command."""
    function = click.option("--db-prefix", default=None, metavar="P",
                            help="Physical database names are P<schema> (e.g. P=t1_ reads t1_nova, t1_blazar).")(function)
    function = click.option("--site", "site_name", default=None, metavar="NAME",
                            help="Site from the config file (with --db-url: just the snapshot's site name).")(function)
    return click.option("--db-url", default=None, metavar="URL", envvar="USAGE_EXPORTER_DB_URL",
                        help="SQLAlchemy URL of the site's databases, e.g. mysql+pymysql://user:pw@host/ "
                             "or sqlite:///demo/site.sqlite.")(function)


def site_from_options(*, db_url: str | None, site_name: str | None, db_prefix: str | None,
                      config_path: str | None) -> tuple[SiteConfig, Path]:
    """The site to use and the default data directory.

    ``--site`` alone: that site from the config. ``--db-url``: an ad-hoc site (named by
    ``--site`` or ``default``; the config's site options apply when it names a configured site).
    """
    if not db_url and not site_name:
        raise ConfigError("give --db-url URL or --site NAME")
    config = _config(config_path, required=not db_url)
    if db_url:
        base = config.find_site(site_name or ADHOC_SITE) if config else None
        site = dataclasses.replace(base, db_url=db_url, db_urls={}) if base else \
            SiteConfig(name=site_name or ADHOC_SITE, display_name=site_name or ADHOC_SITE, db_url=db_url)
    else:
        site = config.site(site_name)
    if db_prefix:
        site = dataclasses.replace(site, databases={**site.databases, **prefixed_databases(db_prefix)})
    return site, config.data_dir if config else Path("data")


def _config(path: str | None, *, required: bool) -> Config | None:
    if path and (required or Path(path).exists()):
        return load_config(path)
    if required:
        raise ConfigError("--site needs a config file (--config)")
    return None

"""Shared click parameter types and options (validation lives here, not in command bodies)."""

from __future__ import annotations

import datetime as dt
import re

import click

from exporter.config import DEFAULT_CONFIG_PATH
from exporter.configvalues import parse_datetime
from exporter.errors import ConfigError

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Longer than any history, short enough that now - duration is still a date.
LONGEST_DURATION = dt.timedelta(days=36500)


def parse_duration(text: str) -> dt.timedelta:
    """``30s``, ``15m``, ``1h``, ``1d``, ``1w`` -> timedelta (at most 100 years)."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"{text!r} is not a duration like 15m, 1h or 1d")
    seconds = int(match.group(1)) * _SECONDS[match.group(2)]
    if seconds > LONGEST_DURATION.total_seconds():
        raise ConfigError(f"{text!r} is longer than {LONGEST_DURATION.days}d (100 years)")
    return dt.timedelta(seconds=seconds)


class Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.timedelta):
            return value
        try:
            return parse_duration(value)
        except ConfigError as err:
            self.fail(str(err), param, ctx)


class DateTime(click.ParamType):
    """A naive-UTC datetime from ``2016-01-01`` or ``2016-01-01T06:00``."""

    name = "DATE"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.datetime):
            return value
        try:
            return parse_datetime(value, "date")
        except ConfigError as err:
            self.fail(str(err), param, ctx)


config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=str(DEFAULT_CONFIG_PATH),
    envvar="USAGE_EXPORTER_CONFIG", show_default=True, show_envvar=True, help="Sites configuration file.",
)

snapshot_time_option = click.option(
    "--snapshot-time", type=DateTime(), default=None,
    help="Override the snapshot time (default: manifest, else the latest recorded time in the data).",
)

keep_openmetrics_option = click.option(
    "--keep-openmetrics", is_flag=True,
    help="Keep each window's OpenMetrics file after its block is verified (default: a later window is written "
         "over it and the last ones are removed, so the extra disk stays within the files of the windows in "
         "flight).",
)


def history_options(command):
    """The options that choose which history is written and how it is labelled: shared by
    ``backfill`` and ``import-vm``, so both write the same samples for the same site."""
    from exporter.metrics import DEFAULT_INSTANCE, DEFAULT_JOB

    for option in reversed([
        click.option("--holdback", type=Duration(), default=None,
                     help="Newest history left to the live exporter [default: 3h, or the site's live_holdback_hours]."),
        click.option("--site", metavar="NAME", help="Take holdback, job, instance and the counter origin "
                                                    "(history_start) from this site in the config."),
        config_option,
        click.option("--job", default=None, help=f"job label written on every sample [default: {DEFAULT_JOB}]."),
        click.option("--instance", default=None,
                     help=f"instance label written on every sample [default: {DEFAULT_INSTANCE}]."),
    ]):
        command = option(command)
    return command


def history_settings(site: str | None, config_path: str, holdback, job, instance):
    """The BackfillOptions the history options select (the site's, overridden by the flags)."""
    import dataclasses

    from exporter.config import load_config
    from exporter.stage_options import BackfillOptions, backfill_options

    options = BackfillOptions()
    if site:
        config = load_config(config_path)
        options = backfill_options(config.site(site, resolve_env=False), config)
    given = {"holdback": holdback, "job": job, "instance": instance}
    return dataclasses.replace(options, **{key: value for key, value in given.items() if value})

"""Config -> stage options: the one place a site's configuration becomes what each stage is given.

``run`` and every command that takes ``--site`` use these, so a site's history_start, maintenance
projects, rules, holdback, job and instance mean the same thing everywhere. Defaults live with
the settings they default (``exporter.config``, ``exporter.metrics``); command-line values given
explicitly win over the site's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.backfill.blocks import DEFAULT_HOLDBACK
from exporter.config import Config, SiteConfig
from exporter.metrics import DEFAULT_INSTANCE, DEFAULT_JOB

if TYPE_CHECKING:
    from exporter.reconstruct.pipeline import ReconstructOptions


@dataclasses.dataclass(frozen=True)
class BackfillOptions:
    """What ``exporter.backfill.blocks.backfill`` takes from the configuration."""

    holdback: dt.timedelta = DEFAULT_HOLDBACK
    job: str = DEFAULT_JOB
    instance: str = DEFAULT_INSTANCE
    origin: dt.datetime | None = None  # where counters start (the site's history_start)


def reconstruct_options(site: SiteConfig, *, rules_path: Path | None = None, **given: object) -> ReconstructOptions:
    """The site's reconstruct options; ``given`` (start, end, step, snapshot_time) override unless None.

    Reads the site's rules file (or ``rules_path``): a bad one fails here, before any work.
    """
    # imported here: the backfill commands take only BackfillOptions from this module, and the
    # reconstruct pipeline's modules cost them ~0.08 s of start-up before the first promtool
    from exporter.reconstruct.pipeline import ReconstructOptions
    from exporter.reconstruct.rulesfile import site_policy

    options = ReconstructOptions(site=site.name, start=site.history_start,
                                 maintenance_projects=site.maintenance_projects, **site_policy(site, rules_path))
    return dataclasses.replace(options, **{key: value for key, value in given.items() if value is not None})


def backfill_options(site: SiteConfig, config: Config | None = None) -> BackfillOptions:
    """The site's holdback and counter origin, the config's job and instance."""
    return BackfillOptions(holdback=dt.timedelta(hours=site.live_holdback_hours),
                           job=config.job if config else DEFAULT_JOB,
                           instance=config.instance if config else DEFAULT_INSTANCE,
                           origin=site.history_start)

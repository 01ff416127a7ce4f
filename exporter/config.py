"""Site configuration (``etc/sites.yaml``): sites, their databases and options.

Secrets never live in the file: ``${NAME}`` is replaced by the environment variable NAME when a
command takes that site (``Config.site``), and a missing variable is a :class:`ConfigError`
naming it (not the value) — so one site's unset password does not block the others. Every
number must be finite and inside its range, every date a real calendar date after 2000-01-01.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from exporter.configvalues import (choice, colour, expand_env, mapping, number_in, parse_datetime, plausible,
                                   read_text, yaml_document)
from exporter.errors import ConfigError
from exporter.metrics import DEFAULT_INSTANCE, DEFAULT_JOB
from exporter.priority import inference_mode, site_priority

DEFAULT_HISTORY_START = dt.datetime(2016, 1, 1)  # a site's history_start when it gives none
DEFAULT_HOLDBACK_HOURS = 3.0  # newest history left to the live exporter
DEFAULT_MAINTENANCE_PROJECTS = ("maintenance",)

DEFAULT_CONFIG_PATH = Path("etc/sites.yaml")
# the logical schemas a site maps to databases (here, not in db.py: reading a config needs no sqlalchemy)
KNOWN_SCHEMAS = ("nova", "nova_api", "nova_cell0", "blazar", "zun", "openstack_audit", "chameleon_usage")


def prefixed_databases(prefix: str) -> dict[str, str]:
    """Physical database names ``<prefix><schema>`` for every known logical schema."""
    return {schema: f"{prefix}{schema}" for schema in KNOWN_SCHEMAS}


# (low, high, unit) of every numeric site option; NaN and infinities are never accepted.
NUMBER_RANGES = {
    "refresh_interval": (1.0, 86400.0, "seconds"),
    "query_timeout": (1.0, 86400.0, "seconds"),
    "live_holdback_hours": (0.01, 24.0 * 366, "hours"),
}
_SITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_site_name(name: str) -> str:
    """``name`` if it can be a directory and a label value as it is (``demo-chi``), else ConfigError."""
    if not _SITE_NAME.fullmatch(name):
        raise ConfigError(f"site name {name!r} must be letters, digits, '_', '.' or '-', starting with a "
                          "letter or digit (it names directories)")
    return name


@dataclass(frozen=True)
class SiteConfig:
    """One site: where its databases are and how to interpret them."""

    name: str
    display_name: str
    db_url: str | None = None  # default URL for every schema
    db_urls: dict[str, str] = field(default_factory=dict)  # per logical schema overrides
    databases: dict[str, str] = field(default_factory=dict)  # logical schema -> physical name
    maintenance_projects: tuple[str, ...] = DEFAULT_MAINTENANCE_PROJECTS
    history_start: dt.datetime = DEFAULT_HISTORY_START
    refresh_interval: float = 60.0
    query_timeout: float = 30.0
    live_holdback_hours: float = DEFAULT_HOLDBACK_HOURS
    hypervisor: str = "auto"  # auto (from the hosts' data, audit.json "hypervisors") | kvm | ironic
    # baremetal | kvm | edge, for presentation; "" = from hypervisor, else the data (exporter.colours)
    kind: str = ""
    rules_file: Path | None = None  # operators' manual rules (exporter.reconstruct.rulesfile); relative to the config
    priority: dict[str, tuple[str, ...]] | None = None  # per level, sources highest first (exporter.priority)
    inference: str = "auto"  # auto | on | off (exporter.priority)
    # when Blazar's host history is complete (exporter.reconstruct.pools): None = from the data
    blazar_complete_since: dt.datetime | str | None = None
    # when an edge site's devices table keeps retired devices (exporter.reconstruct.devices_audit): None = from the data
    device_history_complete_since: dt.datetime | str | None = None
    history_dir: Path | None = None  # reconstruct output `serve` answers /explain from; relative to the config

    def __post_init__(self) -> None:
        check_site_name(self.name)
        if not self.kind:
            object.__setattr__(self, "kind", {"kvm": "kvm", "ironic": "baremetal"}.get(self.hypervisor, ""))
        for key in NUMBER_RANGES:
            object.__setattr__(self, key, number_in(getattr(self, key), NUMBER_RANGES[key], f"sites.{self.name}.{key}"))
        plausible(self.history_start, f"sites.{self.name}.history_start")

    def url_for(self, schema: str) -> str:
        url = self.db_urls.get(schema, self.db_url)
        if not url:
            raise ConfigError(f"site {self.name!r}: no db_url (or db_urls.{schema}) configured")
        return url


@dataclass(frozen=True)
class Config:
    """The sites file. Sites are validated at load; their ``${VAR}``s are resolved by :meth:`site`."""

    data_dir: Path
    unresolved_sites: dict[str, SiteConfig]  # URLs still hold their ${VAR} references
    job: str = DEFAULT_JOB
    instance: str = DEFAULT_INSTANCE
    site_colours: dict[str, str] = field(default_factory=dict)  # fixed figure/dashboard colours
    environ: Mapping[str, str] | None = field(default=None, repr=False, compare=False)  # None: os.environ

    @property
    def site_names(self) -> tuple[str, ...]:
        return tuple(self.unresolved_sites)

    def site(self, name: str, *, resolve_env: bool = True) -> SiteConfig:
        """The site ``name`` with its ``${VAR}``s replaced (an unset one is a ConfigError naming it).

        ``resolve_env=False`` for commands that never connect (their URLs keep the references).
        """
        try:
            site = self.unresolved_sites[name]
        except KeyError:
            known = ", ".join(sorted(self.unresolved_sites)) or "none"
            raise ConfigError(f"unknown site {name!r} (configured: {known})") from None
        if not resolve_env:
            return site
        where = f"site {name!r}"
        return dataclasses.replace(
            site, db_url=expand_env(site.db_url, self.environ, where) if site.db_url else None,
            db_urls={schema: expand_env(url, self.environ, where) for schema, url in site.db_urls.items()})

    def find_site(self, name: str | None, *, resolve_env: bool = True) -> SiteConfig | None:
        """The site ``name`` when it is configured, else None."""
        return self.site(name, resolve_env=resolve_env) if name in self.unresolved_sites else None


def load_config(path: str | Path = DEFAULT_CONFIG_PATH, environ: Mapping[str, str] | None = None) -> Config:
    """Parse and validate a sites file (a site's ``${VAR}``s are resolved when it is used)."""
    path = Path(path)
    raw_text = read_text(path, "config file")
    document = yaml_document(raw_text, f"config file {path}")
    if not isinstance(document, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping")
    unknown = set(document) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"config file {path}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    defaults = mapping(document.get("defaults", {}), "defaults")
    sites_raw = mapping(document.get("sites", {}), "sites")
    sites = {str(name): _site(str(name), mapping(body, f"sites.{name}"), defaults, path.parent)
             for name, body in sites_raw.items()}
    data_dir = Path(expand_env(str(document.get("data_dir", "./data")), environ, "data_dir"))
    return Config(
        data_dir=data_dir,
        unresolved_sites=sites,
        job=str(document.get("job", DEFAULT_JOB)),
        instance=str(document.get("instance", DEFAULT_INSTANCE)),
        site_colours={str(name): colour(value, f"site_colours.{name}")
                      for name, value in mapping(document.get("site_colours", {}), "site_colours").items()},
        environ=environ,
    )


_TOP_KEYS = {"data_dir", "defaults", "sites", "job", "instance", "site_colours"}
_SITE_KEYS = {"display_name", "db_url", "db_urls", "databases", "maintenance_projects", "history_start",
              "refresh_interval", "query_timeout", "live_holdback_hours", "hypervisor", "rules", "priority", "history_dir",
              "inference", "kind", "blazar_complete_since", "device_history_complete_since"}
HYPERVISORS = ("auto", "ironic", "kvm")
# What a site is, for presentation only (per-host detection still decides how hosts are counted):
# bare metal (Ironic + physical:host leases), KVM, or CHI@Edge (devices + Zun containers).
SITE_KINDS = ("baremetal", "kvm", "edge")


def _site(name: str, body: dict, defaults: dict, base: Path = Path(".")) -> SiteConfig:
    merged = {**defaults, **body}
    unknown = set(merged) - _SITE_KEYS
    if unknown:
        raise ConfigError(f"sites.{name}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    for key in ("db_urls", "databases"):
        strange = set(map(str, mapping(merged.get(key), f"sites.{name}.{key}"))) - set(KNOWN_SCHEMAS)
        if strange:
            raise ConfigError(f"sites.{name}.{key}: unknown schema(s) {', '.join(sorted(strange))} "
                              f"(known: {', '.join(KNOWN_SCHEMAS)})")
    if not merged.get("db_url") and not merged.get("db_urls"):
        raise ConfigError(f"sites.{name}: needs db_url (or db_urls per schema)")
    projects = merged.get("maintenance_projects", DEFAULT_MAINTENANCE_PROJECTS)
    try:
        return SiteConfig(
            name=name,
            display_name=str(merged.get("display_name", name)),
            db_url=str(merged["db_url"]) if merged.get("db_url") else None,
            db_urls={str(k): str(v)
                     for k, v in mapping(merged.get("db_urls", {}), f"sites.{name}.db_urls").items()},
            databases={str(k): str(v)
                       for k, v in mapping(merged.get("databases", {}), f"sites.{name}.databases").items()},
            maintenance_projects=(str(projects),) if isinstance(projects, str) else tuple(map(str, projects)),
            history_start=parse_datetime(merged.get("history_start", DEFAULT_HISTORY_START), f"sites.{name}.history_start"),
            **{key: merged[key] for key in NUMBER_RANGES if key in merged},  # checked by SiteConfig
            hypervisor=choice(merged.get("hypervisor", "auto"), HYPERVISORS, f"sites.{name}.hypervisor"),
            kind=choice(merged["kind"], SITE_KINDS, f"sites.{name}.kind") if merged.get("kind") else "",
            rules_file=base / str(merged["rules"]) if merged.get("rules") else None,
            priority=site_priority(merged.get("priority"), f"sites.{name}.priority") if merged.get("priority") else None,
            inference=inference_mode(merged.get("inference"), f"sites.{name}.inference"),
            blazar_complete_since=_complete_since(merged.get("blazar_complete_since"),
                                                  f"sites.{name}.blazar_complete_since"),
            device_history_complete_since=_complete_since(merged.get("device_history_complete_since"),
                                                          f"sites.{name}.device_history_complete_since"),
            history_dir=base / str(merged["history_dir"]) if merged.get("history_dir") else None,
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(f"sites.{name}: {err}") from None


def _complete_since(value: object, what: str) -> dt.datetime | str | None:
    """None (derive from the data), ``never``, or a date-time."""
    if value is None or value == "never":
        return value
    try:
        return parse_datetime(value, what)
    except ConfigError as err:  # the date's own error would hide that "never" is the other choice
        raise ConfigError(f'{err}; or "never" (never complete)') from None



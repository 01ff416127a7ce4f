"""Site configuration (``etc/sites.yaml``): sites, their databases and options.

Secrets never live in the file: ``${NAME}`` is replaced by the environment variable NAME when a
command takes that site (``Config.site``), and a missing variable is a :class:`ConfigError`
naming it (not the value) — so one site's unset password does not block the others. Every
number must be finite and inside its range, every date a real calendar date after 2000-01-01.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from exporter.errors import ConfigError
from exporter.metrics import DEFAULT_INSTANCE, DEFAULT_JOB
from exporter.timeutil import EARLIEST_PLAUSIBLE
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


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Earlier than any OpenStack cloud; later than anything this tool will be used for.
EARLIEST_DATE = EARLIEST_PLAUSIBLE
LATEST_DATE = dt.datetime(2100, 1, 1)
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
    history_dir: Path | None = None  # reconstruct output `serve` answers /explain from; relative to the config

    def __post_init__(self) -> None:
        check_site_name(self.name)
        if not self.kind:
            object.__setattr__(self, "kind", {"kvm": "kvm", "ironic": "baremetal"}.get(self.hypervisor, ""))
        for key in NUMBER_RANGES:
            object.__setattr__(self, key, _number(getattr(self, key), key, f"sites.{self.name}.{key}"))
        _plausible(self.history_start, f"sites.{self.name}.history_start")

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


def expand_env(text: str, environ: Mapping[str, str] | None = None, where: str = "the config") -> str:
    """Replace ``${VAR}`` / ``${VAR:-default}``; unknown variables without default are an error."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set (referenced by {where})")

    return _ENV_REF.sub(substitute, text)


def read_text(path: Path, what: str) -> str:
    """The text of an operator's file (``what``: "config file", "rules file"), or one-line ConfigError."""
    try:
        return path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} not found") from None
    except OSError as err:
        raise ConfigError(f"cannot read {what} {path}: {err.strerror}") from None


def invalid_yaml(err: yaml.YAMLError, where: str) -> ConfigError:
    """The one-line error for a YAML file that does not parse, with the line when known."""
    mark = getattr(err, "problem_mark", None)
    return ConfigError(f"{where}:{f' line {mark.line + 1}' if mark else ''} is not valid YAML")


def load_config(path: str | Path = DEFAULT_CONFIG_PATH, environ: Mapping[str, str] | None = None) -> Config:
    """Parse and validate a sites file (a site's ``${VAR}``s are resolved when it is used)."""
    path = Path(path)
    raw_text = read_text(path, "config file")
    try:
        document = yaml.load(raw_text, Loader=_DatesAsText) or {}
    except yaml.YAMLError as err:
        raise invalid_yaml(err, f"config file {path}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping")
    unknown = set(document) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"config file {path}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    defaults = _mapping(document.get("defaults", {}), "defaults")
    sites_raw = _mapping(document.get("sites", {}), "sites")
    sites = {str(name): _site(str(name), _mapping(body, f"sites.{name}"), defaults, path.parent)
             for name, body in sites_raw.items()}
    data_dir = Path(expand_env(str(document.get("data_dir", "./data")), environ, "data_dir"))
    return Config(
        data_dir=data_dir,
        unresolved_sites=sites,
        job=str(document.get("job", DEFAULT_JOB)),
        instance=str(document.get("instance", DEFAULT_INSTANCE)),
        site_colours={str(name): _colour(value, f"site_colours.{name}")
                      for name, value in _mapping(document.get("site_colours", {}), "site_colours").items()},
        environ=environ,
    )


class _DatesAsText(yaml.SafeLoader):
    """Safe YAML whose dates stay text, so an impossible one (2024-02-30) gets our error naming its key."""


_DatesAsText.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


_TOP_KEYS = {"data_dir", "defaults", "sites", "job", "instance", "site_colours"}
_SITE_KEYS = {"display_name", "db_url", "db_urls", "databases", "maintenance_projects", "history_start",
              "refresh_interval", "query_timeout", "live_holdback_hours", "hypervisor", "rules", "priority", "history_dir",
              "inference", "kind", "blazar_complete_since"}
HYPERVISORS = ("auto", "ironic", "kvm")
# What a site is, for presentation only (per-host detection still decides how hosts are counted):
# bare metal (Ironic + physical:host leases), KVM, or CHI@Edge (devices + Zun containers).
SITE_KINDS = ("baremetal", "kvm", "edge")
_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


def _site(name: str, body: dict, defaults: dict, base: Path = Path(".")) -> SiteConfig:
    merged = {**defaults, **body}
    unknown = set(merged) - _SITE_KEYS
    if unknown:
        raise ConfigError(f"sites.{name}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    for key in ("db_urls", "databases"):
        strange = set(map(str, _mapping(merged.get(key), f"sites.{name}.{key}"))) - set(KNOWN_SCHEMAS)
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
                     for k, v in _mapping(merged.get("db_urls", {}), f"sites.{name}.db_urls").items()},
            databases={str(k): str(v)
                       for k, v in _mapping(merged.get("databases", {}), f"sites.{name}.databases").items()},
            maintenance_projects=(str(projects),) if isinstance(projects, str) else tuple(map(str, projects)),
            history_start=_datetime(merged.get("history_start", DEFAULT_HISTORY_START), f"sites.{name}.history_start"),
            **{key: merged[key] for key in NUMBER_RANGES if key in merged},  # checked by SiteConfig
            hypervisor=_choice(merged.get("hypervisor", "auto"), HYPERVISORS, f"sites.{name}.hypervisor"),
            kind=_choice(merged["kind"], SITE_KINDS, f"sites.{name}.kind") if merged.get("kind") else "",
            rules_file=base / str(merged["rules"]) if merged.get("rules") else None,
            priority=site_priority(merged.get("priority"), f"sites.{name}.priority") if merged.get("priority") else None,
            inference=inference_mode(merged.get("inference"), f"sites.{name}.inference"),
            blazar_complete_since=_complete_since(merged.get("blazar_complete_since"),
                                                  f"sites.{name}.blazar_complete_since"),
            history_dir=base / str(merged["history_dir"]) if merged.get("history_dir") else None,
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(f"sites.{name}: {err}") from None


def _complete_since(value: object, what: str) -> dt.datetime | str | None:
    """None (derive from the data), ``never``, or a date-time."""
    if value is None or value == "never":
        return value
    return _datetime(value, what)


def parse_datetime(value: object, what: str = "time") -> dt.datetime:
    """A naive-UTC datetime from a date/datetime/ISO string (``2016-01-01``, ``2016-01-01T06:00``)."""
    return _datetime(value, what)


def _datetime(value: object, what: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        naive = value if value.tzinfo is None else value.astimezone(dt.timezone.utc)
        return _plausible(naive.replace(tzinfo=None), what)
    if isinstance(value, dt.date):
        return _plausible(dt.datetime(value.year, value.month, value.day), what)
    try:
        parsed = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{what}: {value!r} is not a date like 2016-01-01 or 2016-01-01T06:00 "
                          "(or that day does not exist)") from None
    return _datetime(parsed, what)


def _plausible(moment: dt.datetime, what: str) -> dt.datetime:
    if not EARLIEST_DATE <= moment < LATEST_DATE:
        raise ConfigError(f"{what}: {moment:%Y-%m-%d %H:%M} is outside {EARLIEST_DATE:%Y-%m-%d} .. "
                          f"{LATEST_DATE:%Y-%m-%d} (no OpenStack cloud is older)")
    return moment


def _number(value: object, key: str, what: str) -> float:
    """A finite float inside the key's range (NaN would spin a refresh loop, inf kill it)."""
    low, high, unit = NUMBER_RANGES[key]
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and low <= number <= high):
        raise ConfigError(f"{what} must be a number from {low:g} to {high:g} ({unit}), got {value!r}")
    return number


def _choice(value: object, allowed: tuple[str, ...], what: str) -> str:
    if str(value) not in allowed:
        raise ConfigError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def _colour(value: object, what: str) -> str:
    if not isinstance(value, str) or not _HEX_COLOUR.fullmatch(value):
        raise ConfigError(f"{what} must be a colour like \"#0072b2\", got {value!r}")
    return value.lower()


def _mapping(value: object, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a mapping")
    return value

"""Site configuration (``etc/sites.yaml``): sites, their databases and options.

Secrets never live in the file: ``${NAME}`` is replaced by the environment variable NAME at load
time, and a missing variable is a :class:`ConfigError` naming it (not the value).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from exporter.db import KNOWN_SCHEMAS
from exporter.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("etc/sites.yaml")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class SiteConfig:
    """One site: where its databases are and how to interpret them."""

    name: str
    display_name: str
    db_url: str | None = None  # default URL for every schema
    db_urls: dict[str, str] = field(default_factory=dict)  # per logical schema overrides
    databases: dict[str, str] = field(default_factory=dict)  # logical schema -> physical name
    maintenance_projects: tuple[str, ...] = ("maintenance",)
    history_start: dt.datetime = dt.datetime(2016, 1, 1)
    refresh_interval: float = 60.0
    query_timeout: float = 30.0
    live_holdback_hours: float = 3.0
    hypervisor: str = "ironic"  # "kvm" when the site's Nova hosts are KVM hypervisors (figure colours)

    def url_for(self, schema: str) -> str:
        url = self.db_urls.get(schema, self.db_url)
        if not url:
            raise ConfigError(f"site {self.name!r}: no db_url (or db_urls.{schema}) configured")
        return url


@dataclass(frozen=True)
class Config:
    data_dir: Path
    sites: dict[str, SiteConfig]
    job: str = "openstack-usage"
    instance: str = "openstack-usage-exporter"
    site_colours: dict[str, str] = field(default_factory=dict)  # fixed figure/dashboard colours

    def site(self, name: str) -> SiteConfig:
        try:
            return self.sites[name]
        except KeyError:
            known = ", ".join(sorted(self.sites)) or "none"
            raise ConfigError(f"unknown site {name!r} (configured: {known})") from None


def expand_env(text: str, environ: dict[str, str] | None = None) -> str:
    """Replace ``${VAR}`` / ``${VAR:-default}``; unknown variables without default are an error."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set (referenced in the config)")

    return _ENV_REF.sub(substitute, text)


def load_config(path: str | Path = DEFAULT_CONFIG_PATH, environ: dict[str, str] | None = None) -> Config:
    """Parse and validate a sites file."""
    path = Path(path)
    try:
        raw_text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        document = yaml.safe_load(raw_text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path}:{where} is not valid YAML") from None
    if not isinstance(document, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping")
    unknown = set(document) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"config file {path}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    defaults = _mapping(document.get("defaults", {}), "defaults")
    sites_raw = _mapping(document.get("sites", {}), "sites")
    sites = {name: _site(str(name), _mapping(body, f"sites.{name}"), defaults, environ)
             for name, body in sites_raw.items()}
    data_dir = Path(expand_env(str(document.get("data_dir", "./data")), environ))
    return Config(
        data_dir=data_dir,
        sites=sites,
        job=str(document.get("job", "openstack-usage")),
        instance=str(document.get("instance", "openstack-usage-exporter")),
        site_colours={str(name): _colour(value, f"site_colours.{name}")
                      for name, value in _mapping(document.get("site_colours", {}), "site_colours").items()},
    )


_TOP_KEYS = {"data_dir", "defaults", "sites", "job", "instance", "site_colours"}
_SITE_KEYS = {"display_name", "db_url", "db_urls", "databases", "maintenance_projects", "history_start",
              "refresh_interval", "query_timeout", "live_holdback_hours", "hypervisor"}
HYPERVISORS = ("ironic", "kvm")
_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


def _site(name: str, body: dict, defaults: dict, environ) -> SiteConfig:
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
    projects = merged.get("maintenance_projects", ["maintenance"])
    try:
        return SiteConfig(
            name=name,
            display_name=str(merged.get("display_name", name)),
            db_url=expand_env(str(merged["db_url"]), environ) if merged.get("db_url") else None,
            db_urls={str(k): expand_env(str(v), environ)
                     for k, v in _mapping(merged.get("db_urls", {}), f"sites.{name}.db_urls").items()},
            databases={str(k): str(v)
                       for k, v in _mapping(merged.get("databases", {}), f"sites.{name}.databases").items()},
            maintenance_projects=(str(projects),) if isinstance(projects, str) else tuple(map(str, projects)),
            history_start=_datetime(merged.get("history_start", "2016-01-01"), f"sites.{name}.history_start"),
            refresh_interval=_positive(merged.get("refresh_interval", 60), f"sites.{name}.refresh_interval"),
            query_timeout=_positive(merged.get("query_timeout", 30), f"sites.{name}.query_timeout"),
            live_holdback_hours=_positive(merged.get("live_holdback_hours", 3), f"sites.{name}.live_holdback_hours"),
            hypervisor=_choice(merged.get("hypervisor", "ironic"), HYPERVISORS, f"sites.{name}.hypervisor"),
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(f"sites.{name}: {err}") from None


def parse_datetime(value: object, what: str = "time") -> dt.datetime:
    """A naive-UTC datetime from a date/datetime/ISO string (``2016-01-01``, ``2016-01-01T06:00``)."""
    return _datetime(value, what)


def _datetime(value: object, what: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None) if value.tzinfo is None else value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{what}: {value!r} is not a date like 2016-01-01 or 2016-01-01T06:00") from None
    return _datetime(parsed, what)


def _positive(value: object, what: str) -> float:
    number = float(value)
    if number <= 0:
        raise ConfigError(f"{what} must be > 0, got {value!r}")
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

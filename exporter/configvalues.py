"""Values in operators' YAML files (sites, rules), checked one by one: each bad value is a one-line
ConfigError naming its key. ``exporter.config`` puts them together into sites.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.errors import ConfigError
from exporter.timeutil import EARLIEST_PLAUSIBLE

if TYPE_CHECKING:
    import yaml

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Earlier than any OpenStack cloud; later than anything this tool will be used for.
EARLIEST_DATE = EARLIEST_PLAUSIBLE
LATEST_DATE = dt.datetime(2100, 1, 1)
HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


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


def yaml_document(text: str, where: str) -> object:
    """The YAML document in ``text`` ({} for an empty, null or other falsy one), its dates kept as
    text, or :func:`invalid_yaml`'s error. yaml loads here, not with this module: a command reading
    no YAML file (backfill without --site) does not pay its import (~0.01 s of CPU before the first
    promtool, BENCHMARKS.md session 12)."""
    import yaml

    try:
        return yaml.load(text, Loader=_dates_as_text()) or {}
    except yaml.YAMLError as err:
        raise invalid_yaml(err, where) from None


@functools.cache
def _dates_as_text() -> type:
    import yaml

    class DatesAsText(yaml.SafeLoader):
        """Safe YAML whose dates stay text, so an impossible one (2024-02-30) gets our error naming its key."""

    DatesAsText.yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return DatesAsText


def parse_datetime(value: object, what: str = "time") -> dt.datetime:
    """A naive-UTC datetime from a date/datetime/ISO string (``2016-01-01``, ``2016-01-01T06:00``)."""
    if isinstance(value, dt.datetime):
        naive = value if value.tzinfo is None else value.astimezone(dt.timezone.utc)
        return plausible(naive.replace(tzinfo=None), what)
    if isinstance(value, dt.date):
        return plausible(dt.datetime(value.year, value.month, value.day), what)
    try:
        parsed = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{what}: {value!r} is not a date like 2016-01-01 or 2016-01-01T06:00 "
                          "(or that day does not exist)") from None
    return parse_datetime(parsed, what)


def plausible(moment: dt.datetime, what: str) -> dt.datetime:
    if not EARLIEST_DATE <= moment < LATEST_DATE:
        raise ConfigError(f"{what}: {moment:%Y-%m-%d %H:%M} is outside {EARLIEST_DATE:%Y-%m-%d} .. "
                          f"{LATEST_DATE:%Y-%m-%d} (no OpenStack cloud is older)")
    return moment


def number_in(value: object, bounds: tuple[float, float, str], what: str) -> float:
    """A finite float inside ``bounds`` (low, high, unit) (NaN would spin a refresh loop, inf kill it)."""
    low, high, unit = bounds
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and low <= number <= high):
        raise ConfigError(f"{what} must be a number from {low:g} to {high:g} ({unit}), got {value!r}")
    return number


def choice(value: object, allowed: tuple[str, ...], what: str) -> str:
    if str(value) not in allowed:
        raise ConfigError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def colour(value: object, what: str) -> str:
    if not isinstance(value, str) or not HEX_COLOUR.fullmatch(value):
        raise ConfigError(f"{what} must be a colour like \"#0072b2\", got {value!r}")
    return value.lower()


def mapping(value: object, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a mapping")
    return value

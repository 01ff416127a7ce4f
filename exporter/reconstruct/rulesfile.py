"""Operators' manual rules (``etc/rules.yaml``): parse and validate; applying them is reconstruct's.

A rule says: for the evidence it matches (hostname, node type, project, lease, reservation,
instance, or one source row), during [from, to), do one action — leave it out (``exclude``),
override a derived attribute (``set_pool``, ``set_node_type``) or assert a span the databases
lack (``add_maintenance``, ``add_host``). Every rule carries a confidence and its provenance.
Format and examples: docs/rules.md. Every problem is a ConfigError with one line naming the
file and the rule.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from exporter.columns import CONFIDENCES
from exporter.configvalues import parse_datetime, read_text, yaml_document
from exporter.errors import ConfigError

ACTIONS = ("exclude", "set_pool", "set_node_type", "add_maintenance", "add_host")
MATCH_KEYS = ("hypervisor_hostname", "node_type", "project_id", "lease_id", "reservation_id", "instance_uuid",
              "source_table", "source_id")
POOL_VALUES = ("reservable", "ondemand")
HOST_RESOURCES = ("vcpus", "memory_mb", "disk_gb", "gpus")
RULES_SOURCE = "rules"  # source_table of the spans rules add

_RULE_KEYS = {"id", "site", "match", "from", "to", "action", "confidence", "provenance", "pool", "node_type",
              "resources"}
_REQUIRED = ("id", "site", "action", "confidence", "provenance")
_PROVENANCE_KEYS = {"author", "date", "reason", "reference"}
# The words of an earlier rules format, refused with the word that replaces them.
_OLD_CONFIDENCE = {"high": "direct", "medium": "inferred", "low": "assumed"}
# action -> the value key it needs (if any)
_VALUE_KEY = {"set_pool": "pool", "set_node_type": "node_type"}


@dataclass(frozen=True)
class Provenance:
    author: str
    date: dt.date
    reason: str
    reference: str | None = None


@dataclass(frozen=True)
class Rule:
    """One validated rule. ``match``: sorted (key, values) pairs; ``start``/``end`` None = open."""

    id: str
    site: str
    action: str
    match: tuple[tuple[str, tuple[str, ...]], ...]
    start: dt.datetime | None
    end: dt.datetime | None
    confidence: str
    provenance: Provenance
    value: str | None = None  # the pool (set_pool) or node type (set_node_type, add_host)
    resources: tuple[tuple[str, float], ...] = ()  # add_host: vcpus, memory_mb, disk_gb, gpus

    def matched(self, key: str) -> tuple[str, ...] | None:
        """The values ``key`` must take, or None when the rule does not constrain it."""
        return dict(self.match).get(key)


def load_rules(path: str | Path) -> tuple[Rule, ...]:
    """Every rule of a rules file, validated (ConfigError with one line otherwise)."""
    path = Path(path)
    return parse_rules(read_text(path, "rules file"), where=f"rules file {path}")


def parse_rules(text: str, *, where: str = "rules") -> tuple[Rule, ...]:
    """Rules from YAML text: ``{rules: [rule, ...]}`` (an empty file holds none)."""
    document = yaml_document(text, where)  # dates as text: parse_datetime names a bad one
    if not isinstance(document, dict) or set(document) - {"rules"}:
        raise ConfigError(f"{where}: top level must be a mapping with the one key 'rules'")
    raw = document.get("rules") or []
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: 'rules' must be a list")
    rules = tuple(_rule(body, f"{where}: rule {index + 1}") for index, body in enumerate(raw))
    ids = [rule.id for rule in rules]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ConfigError(f"{where}: rule id(s) used twice: {', '.join(repeated)}")
    contradiction = first_contradiction(rules)
    if contradiction:
        raise ConfigError(f"{where}: {contradiction}")
    return rules


def rules_for_site(rules: tuple[Rule, ...], site: str) -> tuple[Rule, ...]:
    return tuple(rule for rule in rules if rule.site == site)


def site_policy(site, rules_path: str | Path | None = None) -> dict:
    """``rules``/``priority``/``inference``/``blazar_complete_since``/``device_history_complete_since``
    for a site (SiteConfig), as reconstruct takes them.

    ``rules_path`` (``--rules``) replaces the site's ``rules:`` file.
    """
    path = rules_path or getattr(site, "rules_file", None)
    rules = rules_for_site(load_rules(path), site.name) if path else ()
    return {"rules": rules, "priority": getattr(site, "priority", None), "inference": getattr(site, "inference", "auto"),
            "blazar_complete_since": getattr(site, "blazar_complete_since", None),
            "device_history_complete_since": getattr(site, "device_history_complete_since", None)}


def _rule(body: object, where: str) -> Rule:
    if not isinstance(body, dict):
        raise ConfigError(f"{where}: must be a mapping")
    if "id" in body:
        where = f"{where.rsplit(': rule', 1)[0]}: rule {body['id']!r}"
    _known(body, _RULE_KEYS, where)
    missing = [key for key in _REQUIRED if body.get(key) in (None, "")]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    action = str(body["action"])
    if action not in ACTIONS:
        raise ConfigError(f"{where}: unknown action {action!r} (known: {', '.join(ACTIONS)})")
    confidence = _confidence(body["confidence"], where)
    start, end = _window(body, where)
    match = _match(body.get("match"), action, where)
    return Rule(id=str(body["id"]), site=str(body["site"]), action=action, match=match, start=start, end=end,
                confidence=confidence, provenance=_provenance(body["provenance"], where),
                value=_value(body, action, where), resources=_resources(body, action, where))


def _confidence(raw: object, where: str) -> str:
    """The rule's confidence, in the span vocabulary (exporter.columns.CONFIDENCES)."""
    confidence = str(raw)
    if confidence in CONFIDENCES:
        return confidence
    hint = _OLD_CONFIDENCE.get(confidence)
    instead = f" (use {hint!r}: rules share the spans' confidence vocabulary)" if hint else ""
    raise ConfigError(f"{where}: confidence must be one of {', '.join(CONFIDENCES)}, not {confidence!r}{instead}")


def _known(body: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(map(str, set(body) - allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(allowed))})")


def _window(body: dict, where: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    start = None if body.get("from") is None else parse_datetime(body["from"], f"{where}: from")
    end = None if body.get("to") is None else parse_datetime(body["to"], f"{where}: to")
    if start is not None and end is not None and end <= start:
        raise ConfigError(f"{where}: 'to' ({end}) is not after 'from' ({start})")
    return start, end


def _match(raw: object, action: str, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: match must be a mapping of {', '.join(MATCH_KEYS)}")
    _known(raw, set(MATCH_KEYS), f"{where}: match")
    pairs = []
    for key in sorted(raw):
        values = raw[key] if isinstance(raw[key], list) else [raw[key]]
        if not values or any(v is None or isinstance(v, (dict, list)) for v in values):
            raise ConfigError(f"{where}: match.{key} must be a value or a non-empty list of values")
        pairs.append((str(key), tuple(sorted({str(v) for v in values}))))
    keys = {key for key, _ in pairs}
    if "source_id" in keys and "source_table" not in keys:
        raise ConfigError(f"{where}: match.source_id needs match.source_table")
    if action == "add_host" and keys != {"hypervisor_hostname"}:
        raise ConfigError(f"{where}: add_host matches exactly hypervisor_hostname (the hosts it adds)")
    if action in ("set_pool", "add_maintenance") and keys - {"hypervisor_hostname", "node_type"}:
        raise ConfigError(f"{where}: {action} speaks for hosts: match only hypervisor_hostname and/or node_type")
    if action in ("exclude", "set_pool", "set_node_type") and not pairs:
        raise ConfigError(f"{where}: {action} needs a match (an empty match would cover the whole site)")
    return tuple(pairs)


def _value(body: dict, action: str, where: str) -> str | None:
    key = _VALUE_KEY.get(action)
    stray = [k for k in ("pool", "node_type") if k in body and k != key and not (action == "add_host" and
                                                                                 k == "node_type")]
    if stray:
        raise ConfigError(f"{where}: {', '.join(stray)} does not apply to action {action}")
    if action == "add_host":
        return None if body.get("node_type") is None else str(body["node_type"])
    if key is None:
        return None
    if body.get(key) in (None, ""):
        raise ConfigError(f"{where}: {action} needs '{key}'")
    value = str(body[key])
    if key == "pool" and value not in POOL_VALUES:
        raise ConfigError(f"{where}: pool must be one of {', '.join(POOL_VALUES)}, not {value!r}")
    return value


def _resources(body: dict, action: str, where: str) -> tuple[tuple[str, float], ...]:
    raw = body.get("resources")
    if raw is None:
        return ()
    if action != "add_host":
        raise ConfigError(f"{where}: resources applies to add_host only")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: resources must be a mapping of {', '.join(HOST_RESOURCES)}")
    _known(raw, set(HOST_RESOURCES), f"{where}: resources")
    try:
        values = {key: float(raw[key]) for key in raw}
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: resources must be numbers") from None
    if any(v < 0 for v in values.values()):
        raise ConfigError(f"{where}: resources must not be negative")
    return tuple(sorted(values.items()))


def _provenance(raw: object, where: str) -> Provenance:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: provenance must be a mapping with author, date, reason (reference optional)")
    _known(raw, _PROVENANCE_KEYS, f"{where}: provenance")
    missing = [key for key in ("author", "date", "reason") if raw.get(key) in (None, "")]
    if missing:
        raise ConfigError(f"{where}: provenance needs {', '.join(missing)}")
    date = parse_datetime(raw["date"], f"{where}: provenance.date").date()
    reference = None if raw.get("reference") is None else str(raw["reference"])
    return Provenance(author=str(raw["author"]), date=date, reason=str(raw["reason"]), reference=reference)


def first_contradiction(rules: tuple[Rule, ...]) -> str | None:
    """A sentence naming two rules that could apply to the same evidence at the same time and
    disagree (two different pools or node types, or exclude vs add), else None."""
    for index, first in enumerate(rules):
        for second in rules[index + 1:]:
            if first.site == second.site and _disagree(first, second) and _overlap(first, second):
                return (f"rules {first.id!r} and {second.id!r} contradict each other "
                        f"({first.action} vs {second.action} on overlapping evidence and time)")
    return None


def _disagree(first: Rule, second: Rule) -> bool:
    actions = {first.action, second.action}
    if first.action == second.action and first.action in _VALUE_KEY:
        return first.value != second.value
    return "exclude" in actions and bool(actions & {"add_host", "add_maintenance"})


def _overlap(first: Rule, second: Rule) -> bool:
    """Both could cover one moment and one piece of evidence (keys only one names do not separate)."""
    lo = max(first.start or dt.datetime.min, second.start or dt.datetime.min)
    hi = min(first.end or dt.datetime.max, second.end or dt.datetime.max)
    if hi <= lo:
        return False
    theirs = dict(second.match)
    return all(set(values) & set(theirs[key]) for key, values in first.match if key in theirs)

"""``rules check``: what a site's manual rules would change in a snapshot, with nothing written.

The spans stage runs as in ``reconstruct`` (same loading, priority, inference and books, the row
and hour invariants checked); the timeline is not built and no file is written. The answer is
the audit's per-rule table (docs/rules.md, "Traceability") and the warnings, as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporter.errors import ConfigError
from exporter.progress import SILENT, Progress
from exporter.reconstruct.pipeline import ReconstructOptions, snapshot_spans
from exporter.reconstruct.rulesfile import Rule

STAGES = ("load snapshot", "spans")
# audit.json rule-table column -> heading, in the order they are printed
COLUMNS = {
    "rows_excluded": "rows excluded", "hours_excluded": "hours excluded",
    "rows_overridden": "rows overridden", "hours_overridden": "hours overridden",
    "spans": "spans added/changed", "hours_added_or_changed": "hours added/changed",
}


@dataclass(frozen=True)
class RulesCheck:
    """The site's rules, what each changes per level (audit.json ``rules`` rows) and the warnings."""

    site: str
    snapshot_dir: Path
    rules: tuple[Rule, ...]
    table: list[dict]
    warnings: list[str]


def check_rules(snapshot_dir: Path, options: ReconstructOptions, progress: Progress | None = None) -> RulesCheck:
    """Run the spans stage of ``snapshot_dir`` with ``options.rules``; nothing is written.

    Raises ConfigError when no rule names the site, and whatever the spans stage raises.
    """
    if not options.rules:
        raise ConfigError(f"no rule names site {options.site!r} (give --rules FILE or a config whose site has "
                          "rules:; a rule applies to the site its 'site:' names)")
    span_set, _, _ = snapshot_spans(Path(snapshot_dir), options, progress or SILENT)
    return RulesCheck(site=options.site, snapshot_dir=Path(snapshot_dir), rules=tuple(options.rules),
                      table=list(span_set.audit.get("rules", [])), warnings=list(span_set.audit["warnings"]))


def check_text(check: RulesCheck) -> str:
    """Per rule: its action, range and reason, then per level the rows and hours it changes."""
    lines = [f"rules check: site {check.site}, {len(check.rules)} rule(s), snapshot {check.snapshot_dir} "
             "(nothing written)"]
    for rule in check.rules:
        span = f"[{rule.start or '-inf'} .. {rule.end or 'open'})"
        lines.append(f"rule {rule.id!r}: {rule.action} {span}, confidence {rule.confidence}: {rule.provenance.reason}")
        rows = [row for row in check.table if row["rule_id"] == rule.id]
        if not rows:
            lines.append("  changes nothing")
            continue
        lines.append(f"  {'level':<12}" + "".join(f"{heading:>21}" for heading in COLUMNS.values()))
        for row in rows:
            cells = "".join(f"{_number(row[key]):>21}" for key in COLUMNS)
            lines.append(f"  {row['level']:<12}{cells}")
    lines += [f"warning: {warning}" for warning in check.warnings]
    return "\n".join(lines)


def _number(value: float | int) -> str:
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"

"""The human answer of ``usage-exporter explain``: a short table of the JSON answer."""

from __future__ import annotations


def _num(value: float) -> str:
    return f"{value:,.6g}"


def _window(result: dict) -> str:
    cell = result.get("cell") or {}
    if "start" in cell:
        return f"cell {cell['start']} .. {cell['end']} (mean over {cell['step_seconds']} s)"
    return f"at {result.get('at')} (the value now)"


def render_table(result: dict) -> str:
    """Value and formula, the value of each level, the listed contributors, anomaly counts."""
    sel = result["selection"]
    labels = ", ".join(f"{key}={','.join(v) if isinstance(v, list) else v}" for key, v in sel.items() if v is not None)
    lines = [f"site {result['site']}, {_window(result)}", f"selection: {labels}",
             f"value {_num(result['value'])} = {result['formula']['text']}"]
    for term in result["formula"]["terms"]:
        lines.append(f"  {'+' if term['sign'] > 0 else '-'}{abs(term['sign'])} x {term['series']:<28} {_num(term['value']):>14}")
    lines.append(f"contributions sum {_num(result['contributions_sum'])} (difference {result['difference']:.3g}) "
                 f"from {result['spans_total']} span(s)")
    if result["spans"]:
        first = result["offset"] + 1
        lines.append(f"contributors {first}..{first + len(result['spans']) - 1} of {result['spans_total']} "
                     "(largest first):")
        lines.append(f"  {'contribution':>12}  {'level':<22} {'host':<20} {'node type':<16} source")
        for span in result["spans"]:
            level = span["series"]
            lines.append(f"  {span['contribution']:>+12.6g}  {level:<22} {str(span['hostname'])[:20]:<20} "
                         f"{str(span['node_type'])[:16]:<16} {span['source_table']}#{span['source_id']}")
    lines.append(f"ledger deltas inside the cell: {result['ledger']['total']}")
    counts = ", ".join(f"{kind} {entry['count']}" for kind, entry in result["anomalies"].items())
    lines.append(f"anomalies: {counts}")
    return "\n".join(lines)

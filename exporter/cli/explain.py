"""``usage-exporter explain``: why a timeline cell holds its value, span by span."""

from __future__ import annotations

import json
from pathlib import Path

import click

from exporter.cli.options import DateTime
from exporter.columns import POOLS, STATES, TIMELINE_RESOURCES

RESOURCES = (*TIMELINE_RESOURCES, "devices")  # devices: an edge site's device family (node type = machine_name)


def _listed(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...] | None:
    """Repeated or comma-separated option values (checked against the vocabulary); none given = all."""
    flat = tuple(dict.fromkeys(v.strip() for value in values for v in value.split(",") if v.strip()))
    allowed = {"pools": POOLS, "states": STATES}.get(param.name)
    wrong = [value for value in flat if allowed is not None and value not in allowed]
    if wrong:
        raise click.BadParameter(f"{', '.join(wrong)} (choose from {', '.join(allowed)})", ctx, param)
    return flat or None


@click.command("explain")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--at", "at", required=True, type=DateTime(), help="Any time inside the timeline (UTC); the "
              "answer is for the grid cell holding it.")
@click.option("--site", help="Site (must be the output's; default: the output's).")
@click.option("--node-type", "node_types", multiple=True, callback=_listed, help="Node type(s) (repeatable or comma-separated). "
              "Default: all, summed.")
@click.option("--pool", "pools", multiple=True, callback=_listed,
              help=f"Pool(s): {', '.join(POOLS)} (repeatable or comma-separated). Default: all, summed.")
@click.option("--state", "states", multiple=True, callback=_listed,
              help=f"State(s): {', '.join(STATES)} (repeatable or comma-separated). Default: all, summed.")
@click.option("--resource", type=click.Choice(RESOURCES), default="nodes", show_default=True,
              help="One resource (a metric family; resources are never summed). devices: an edge site's "
                   "devices (openstack_usage_devices; --node-type is then the machine_name).")
@click.option("--limit", type=click.IntRange(min=1), help="List at most this many spans and deltas [default: "
              "all with --json, 10 in the table].")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip this many spans and deltas (paging).")
@click.option("--json", "as_json", is_flag=True, help="The whole answer as JSON (docs/explain.md).")
def command(out, at, site, node_types, pools, states, resource, limit, offset, as_json):
    """Explain the value of one timeline cell of OUT (a reconstruct output): the leaf formula in
    levels, every contributing span with its database row and signed contribution (they add up
    to the value), the ledger deltas inside the cell and anomalies by kind.

    \b
    Examples:
      usage-exporter explain out/chi_uc --at 2023-03-07T14:00 --node-type gpu_a100 --pool reservable --state idle
      usage-exporter explain out/chi_uc --at 2023-03-07T14:30 --json > why.json
      usage-exporter explain out/chi_edge --at 2023-03-07T14:00 --resource devices --node-type jetson-nano
    """
    from exporter.explain import Selection, explain_output, render_table

    selection = Selection(site=site, node_types=node_types, pools=pools, states=states, resource=resource)
    if limit is None and not as_json:
        limit = 10
    result = explain_output(out, at, selection, limit=limit, offset=offset)
    click.echo(json.dumps(result, indent=2, sort_keys=True, allow_nan=False) if as_json else render_table(result))

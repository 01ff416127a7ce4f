"""Request specs: which Blazar reservation (if any) an instance was booked against.

``nova_api.request_specs.spec`` is the JSON of a RequestSpec. A bare-metal instance names its
reservation in the scheduler hint ``reservation`` (a list of strings); a KVM instance of a
virtual/flavor:instance reservation boots a private flavor named ``reservation:<id>``.
The table itself is declared in ``nova_instances.READS``.
"""

from __future__ import annotations

import polars as pl

from exporter.adapters import common

HINT_PATH = "$['nova_object.data'].scheduler_hints.reservation[0]"
FLAVOR_NAME_PATH = "$['nova_object.data'].flavor['nova_object.data'].name"
FLAVOR_PREFIX = "reservation:"


# Fast paths for the same two fields: scheduler_hints and the flavor object hold no nested
# object before these keys in what Nova writes; anything else falls back to full JSON parsing.
HINT_PATTERN = r'"scheduler_hints":\s*\{[^{}]*?"reservation":\s*\[\s*"([^"]*)"'
FLAVOR_NAME_PATTERN = r'"flavor":\s*\{[^{}]*?"nova_object\.data":\s*\{[^{}]*?"name":\s*"([^"]*)"'


def reservation_links(request_specs: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """instance_uuid, reservation_id: one row per instance whose spec names a reservation.

    The scheduler hint wins over the flavor name; unparseable JSON names none (on-demand).
    Specs that never mention "reservation" are skipped; the others are matched by pattern (the
    hint first, the flavor name only where no hint) and only those the patterns miss are parsed
    as JSON.
    """
    specs = common.typed(request_specs, {"instance_uuid": common.ID, "spec": common.TEXT}).filter(
        pl.col("spec").str.contains("reservation", literal=True))
    spec = pl.col("spec")
    hinted = specs.with_columns(_linked(spec.str.extract(HINT_PATTERN, 1), pl.lit(None, dtype=pl.String)))
    unhinted = hinted.filter(pl.col("reservation_id").is_null())
    by_flavor = unhinted.with_columns(_linked(pl.lit(None, dtype=pl.String), spec.str.extract(FLAVOR_NAME_PATTERN, 1)))
    parsed = by_flavor.filter(pl.col("reservation_id").is_null()).with_columns(
        _linked(spec.str.json_path_match(HINT_PATH), spec.str.json_path_match(FLAVOR_NAME_PATH)))
    found = [frame.filter(pl.col("reservation_id").is_not_null()) for frame in (hinted, by_flavor)]
    linked = pl.concat([*found, parsed]).select("instance_uuid", "reservation_id")
    return linked.filter(pl.col("reservation_id").is_not_null()).unique("instance_uuid", keep="first",
                                                                        maintain_order=True)


def _linked(hint: pl.Expr, flavor_name: pl.Expr) -> pl.Expr:
    from_flavor = (
        pl.when(flavor_name.str.starts_with(FLAVOR_PREFIX))
        .then(flavor_name.str.slice(len(FLAVOR_PREFIX)))
        .otherwise(None)
    )
    return pl.coalesce(_non_empty(hint), _non_empty(from_flavor)).alias("reservation_id")


def _non_empty(expr: pl.Expr) -> pl.Expr:
    text = expr.str.strip_chars()
    return pl.when(text == "").then(None).otherwise(text)

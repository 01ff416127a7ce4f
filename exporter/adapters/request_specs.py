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

    The scheduler hint wins over the flavor name; a spec neither the patterns nor the JSON
    parser read a reservation from names none (on-demand). Rule in words: docs/semantics.md
    "occupied", Booking.
    Specs that never mention "reservation" are skipped. A spec's hint is read by pattern, else
    by JSON parsing (only where the key "reservation" is present); only a spec with no hint is
    searched for the flavor name, by pattern, else by JSON parsing. An instance with several
    specs takes a hint of any of them first, then a flavor name (in row order within each).
    """
    specs = common.typed(request_specs, {"instance_uuid": common.ID, "spec": common.TEXT}).filter(
        pl.col("spec").str.contains("reservation", literal=True))
    # One pass, each step on the specs the earlier ones left unlinked (the others are null for it,
    # and string functions skip nulls), so no pattern or parse runs twice on a spec.
    spec, hint, flavor = pl.col("spec"), pl.col("_hint"), pl.col("_flavor")
    unhinted = pl.when(hint.is_null()).then(spec)  # null elsewhere: string functions skip it
    # A flavor name "reservation:<id>" never contains the quoted key, so KVM specs skip the parse.
    hint_missed = pl.when(unhinted.str.contains('"reservation"', literal=True)).then(unhinted)
    linked = (
        specs.with_columns(_hint=_non_empty(spec.str.extract(HINT_PATTERN, 1)))
        .with_columns(_hint=pl.coalesce(hint, _non_empty(hint_missed.str.json_path_match(HINT_PATH))))
        .with_columns(_flavor=_non_empty(_reservation_of(unhinted.str.extract(FLAVOR_NAME_PATTERN, 1))))
        .with_columns(_flavor=pl.coalesce(flavor, _non_empty(_reservation_of(
            pl.when(hint.is_null() & flavor.is_null()).then(spec).str.json_path_match(FLAVOR_NAME_PATH)))))
        .select("instance_uuid", pl.coalesce(hint, flavor).alias("reservation_id"),
                pl.when(hint.is_not_null()).then(0).otherwise(1).alias("_tier"))
    )
    return (linked.filter(pl.col("reservation_id").is_not_null()).sort("_tier", maintain_order=True)
            .filter(pl.col("instance_uuid").is_first_distinct()).drop("_tier"))


def _reservation_of(flavor_name: pl.Expr) -> pl.Expr:
    """The reservation id a private flavor's name ``reservation:<id>`` holds, else null."""
    return (
        pl.when(flavor_name.str.starts_with(FLAVOR_PREFIX))
        .then(flavor_name.str.slice(len(FLAVOR_PREFIX)))
        .otherwise(None)
    )


def _non_empty(expr: pl.Expr) -> pl.Expr:
    text = expr.str.strip_chars()
    return pl.when(text == "").then(None).otherwise(text)

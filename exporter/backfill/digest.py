"""``samples_sha256``: the digest of a window's samples that backfill.json records for every window.

It is taken from the numbers the worker already holds (16 bytes a sample), not from the text
(~177 bytes a sample), so a window whose file is removed is never hashed as text; the definition
is in docs/backfill.md ("Verifying a re-run"), in words anyone can recompute from a kept file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import polars as pl

from exporter.engine.runs import runs


def samples_sha256(parts: Sequence[pl.DataFrame]) -> str:
    """The hex sha256 of the sample lines in ``parts`` (frames with ``family``, ``prefix`` (Enum:
    ``name{labels}``), ``value`` (Float64) and ``t`` (Int64 seconds), each written family by family,
    rows in order within a family: openmetrics.write_samples, families.write_family_samples), in
    file order, as docs/backfill.md defines it:

    the number of runs (maximal stretches of consecutive lines with the same ``name{labels}``),
    then each run's ``name{labels}`` byte length, then each run's sample count (all unsigned
    64-bit), then the runs' ``name{labels}`` bytes one after another, then every timestamp
    (signed 64-bit), then every value (IEEE binary64); all little-endian, no separators: the
    counts and lengths come first, so two different windows cannot give the same bytes."""
    ordered = [stretch for part in parts for stretch in _in_file_order(part)]
    names: list[str] = []
    counts: list[int] = []
    for part in ordered:
        starts, ends = runs(part["prefix"].to_physical().to_numpy())
        for name, count in zip(part["prefix"].gather(starts).cast(pl.String).to_list(), (ends - starts).tolist()):
            if names and names[-1] == name:  # a run going on across two parts is one run, as in the text
                counts[-1] += count
            else:
                names.append(name)
                counts.append(count)
    encoded = [name.encode() for name in names]
    digest = hashlib.sha256(np.array([len(names)], dtype="<u8").tobytes())
    digest.update(np.array([len(name) for name in encoded], dtype="<u8").tobytes())
    digest.update(np.array(counts, dtype="<u8").tobytes())
    digest.update(b"".join(encoded))
    for column, dtype in (("t", "<i8"), ("value", "<f8")):
        for part in ordered:
            digest.update(np.ascontiguousarray(part[column].to_numpy(), dtype=dtype))
    return digest.hexdigest()


def _in_file_order(part: pl.DataFrame) -> list[pl.DataFrame]:
    """``part`` as the writer puts it in the file: family by family, rows in order within a family
    (a stable sort by family), as slices of its stretches of one family, so no row is copied."""
    family = part["family"].to_numpy()
    starts, ends = runs(family)
    return [part.slice(int(starts[i]), int(ends[i] - starts[i])) for i in np.argsort(family[starts], kind="stable")]

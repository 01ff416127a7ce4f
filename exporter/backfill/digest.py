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
    """The hex sha256 of the sample lines in ``parts`` (frames with ``prefix`` (Enum:
    ``name{labels}``), ``value`` (Float64) and ``t`` (Int64 seconds)), taken in the order given:
    the file's, as windows._write_window hands the same parts (openmetrics.family_parts) to the
    writers. The bytes hashed: docs/backfill.md "Verifying a re-run"."""
    names: list[str] = []
    counts: list[int] = []
    for part in parts:
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
        for part in parts:
            digest.update(np.ascontiguousarray(part[column].to_numpy(), dtype=dtype))
    return digest.hexdigest()

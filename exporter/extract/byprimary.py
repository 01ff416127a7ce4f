"""Reading a table by its primary key when it is copied in the order of another key.

``nova.instance_extra`` is copied in ``instance_uuid`` order (the declared key) but stored by its
primary key ``id``. A range of ``instance_uuid`` is no range of the stored rows: the server scans
the whole table for each (7 scans of 345k rows with a TEXT column: 2.1-2.3 s of its CPU, against
0.42 s for one scan in ``id`` order). So such a table is read once, in ``id`` ranges of at most
``batch_rows`` rows, and each range's rows are put on disk by the ``instance_uuid`` range they
belong to (the ranges the consistent view gave, each at most ``batch_rows`` of its rows: a
bounded external sort in two passes); then each key range is read back, sorted here and checked
exactly like a key range read from the server. Memory holds the ranges in flight and one key
range, as before; the disk, the table's rows once (the snapshot's staging directory).

Rows are only put in a key range here where this process orders keys like the server: text of
lowercase (or uppercase) hex digits and dashes throughout, as UUIDs are. Anything else (another
key, a null key) drops what was put on disk and the table is read by key ranges instead. A row
inserted since the view opened may land outside every range: it goes to the nearest, where it is
taken from the view or dropped (recent), or fails the key check (not recent), as it would have.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import polars as pl

UUID_LIKE = (r"^[0-9a-f-]*$", r"^[0-9A-F-]*$")  # on these every collation orders like the bytes
_RANGE = "__range"


def uuid_like(keys: pl.Series) -> str | None:
    """The UUID_LIKE pattern every one of the text ``keys`` follows, or None."""
    return next((like for like in UUID_LIKE if keys.str.contains(like).all()), None)


def read_by_primary(table, key_ranges: list[tuple], primary_ranges: Iterable[tuple],
                    read: Callable[[Iterable[tuple], Callable[[tuple], tuple[str, bool]]], Iterator],
                    spill_dir: Path) -> SpilledRanges | None:
    """The rows of ``key_ranges`` (bounds as ``keyranges.key_ranges`` gives them), read by ``read``
    over ``primary_ranges`` of ``table.primary`` and put on disk (see SpilledRanges); None when
    the keys cannot be put in ranges here (nothing is kept then)."""
    if not all(isinstance(bounds[0], str) for bounds in key_ranges):  # only text keys are placed here
        return None
    lows = pl.Series([bounds[0] for bounds in key_ranges], dtype=pl.String)
    work = Path(tempfile.mkdtemp(prefix=".by-primary.", dir=spill_dir))
    reads = read(primary_ranges, lambda bounds: table.query(*bounds, ordered=True, by=table.primary))
    kind, schema = None, None
    try:
        for number, (_, _, raw) in enumerate(reads):
            schema, keys = schema or raw.schema, raw[table.key]
            if raw.is_empty():
                continue
            if keys.dtype != pl.String or keys.null_count():
                break
            if kind is None:  # the first rows tell which UUID_LIKE pattern the keys follow
                kind = uuid_like(keys)
                if kind is None:
                    break
            elif not keys.str.contains(kind).all():
                break
            # a key below the first range's low goes to the first range (as signed: 0 - 1 is no wrap to the last)
            placed = (lows.search_sorted(keys, side="right").cast(pl.Int64) - 1).clip(0, len(lows) - 1).alias(_RANGE)
            for (index,), part in raw.with_columns(placed).partition_by(_RANGE, as_dict=True).items():
                part.drop(_RANGE).write_ipc(work / f"{index:06d}.{number:06d}.arrow", compression="lz4")
        else:
            if schema is not None:
                return SpilledRanges(work, key_ranges, schema)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        reads.close()
    shutil.rmtree(work, ignore_errors=True)
    return None


class SpilledRanges:
    """Each key range's rows read back from disk, in order, as ``(bounds, False, rows in no
    particular order)``. The directory goes once the last range is read, or at ``close()`` —
    which the reader calls however its stream ends, so a failed stream leaves nothing behind."""

    def __init__(self, work: Path, key_ranges: list[tuple], schema) -> None:
        self.work, self._key_ranges, self._schema = work, key_ranges, schema

    def __iter__(self) -> Iterator[tuple[tuple, bool, pl.DataFrame]]:
        for index, bounds in enumerate(self._key_ranges):
            parts = sorted(self.work.glob(f"{index:06d}.*.arrow"))
            rows = pl.concat([pl.read_ipc(part) for part in parts]) if parts \
                else pl.DataFrame(schema=self._schema)
            for part in parts:
                part.unlink()
            yield bounds, False, rows
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)

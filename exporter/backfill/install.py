"""Install exactly the blocks a backfill's manifest lists into a Prometheus data directory.

Each listed block is checked first (a block id, present, with a readable ``meta.json``), then
against the blocks already in the data directory: a block whose time range overlaps one there
is refused, because Prometheus would merge both and count that history twice. Then each block is
copied into ``<data-dir>/<ULID>.tmp-for-creation`` (a name Prometheus never loads and deletes at
start-up), synced, given the data directory's owner, and renamed into place, so Prometheus only
ever sees complete blocks. A block already installed with the same id and range is skipped, so
a rerun after an interruption finishes the job.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from exporter.errors import DiskFull, OutputError
from exporter.faults import fault_point
from exporter.layout import BACKFILL_MANIFEST, BLOCKS_DIR
from exporter.publish import disk_errors, fsync_tree, publish_new_directory

CREATING_SUFFIX = ".tmp-for-creation"  # Prometheus's own suffix for blocks being written
BLOCK_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


@dataclass(frozen=True)
class Block:
    ulid: str
    path: Path
    min_time: int  # ms since the epoch, inclusive
    max_time: int  # ms since the epoch, exclusive


@dataclass(frozen=True)
class InstallResult:
    installed: tuple[Block, ...]
    already_there: tuple[Block, ...]
    data_dir: Path


def listed_block_ids(backfill_dir: Path) -> list[str]:
    """The block ids ``backfill.json`` lists, each checked to be a plain block id (no path)."""
    path = Path(backfill_dir) / BACKFILL_MANIFEST
    try:
        document = json.loads(path.read_text())
        names = [name for entry in document["files"] for name in entry.get("blocks", [])]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise OutputError(f"{path}: missing or not a backfill manifest (run `usage-exporter backfill --blocks`)") from None
    bad = [name for name in names if not isinstance(name, str) or not BLOCK_ID.match(name)]
    if bad:
        raise OutputError(f"{path} lists {str(bad[0])[:80]!r}, which is not a block id; refusing to install "
                          "(the manifest was not written by backfill)")
    if not names:
        raise OutputError(f"{path} lists no blocks (run `usage-exporter backfill --blocks`)")
    return names


def read_block(path: Path) -> Block:
    """A block directory's id and time range from its ``meta.json``."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        return Block(path.name, path, int(meta["minTime"]), int(meta["maxTime"]))
    except (OSError, ValueError, KeyError, TypeError):
        raise OutputError(f"{path}: not a complete TSDB block (no readable meta.json with minTime/maxTime)") from None


def blocks_in(data_dir: Path) -> dict[str, Block]:
    """The blocks Prometheus would load from ``data_dir``: directories named by a block id."""
    return {entry.name: read_block(Path(entry.path)) for entry in os.scandir(data_dir)
            if entry.is_dir(follow_symlinks=False) and BLOCK_ID.match(entry.name)}


def install_blocks(backfill_dir: Path, data_dir: Path) -> InstallResult:
    """Copy the manifest's blocks into ``data_dir`` (see the module docstring); OutputError on any refusal."""
    backfill_dir, data_dir = Path(backfill_dir), Path(data_dir)
    if not data_dir.is_dir():
        raise OutputError(f"--data-dir {data_dir} is not a directory (give Prometheus's --storage.tsdb.path)")
    wanted = [read_block(backfill_dir / BLOCKS_DIR / ulid) for ulid in listed_block_ids(backfill_dir)]
    present = blocks_in(data_dir)
    already = [block for block in wanted if _same(block, present.get(block.ulid))]
    todo = [block for block in wanted if block not in already]
    _refuse_overlaps(todo, [b for b in present.values()])
    for index, block in enumerate(todo):
        try:
            with disk_errors(data_dir / block.ulid, "install-blocks"):
                _install(block, data_dir)
        except DiskFull:
            raise DiskFull(f"no space left on the device of {data_dir}: {index} of {len(todo)} block(s) installed, "
                           f"the partial copy of {block.ulid} removed; free some space and run it again "
                           "(installed blocks are skipped)") from None
        if index == 0:
            fault_point("install-blocks:after-first-block")
    return InstallResult(tuple(todo), tuple(already), data_dir)


def _same(block: Block, there: Block | None) -> bool:
    if there is None:
        return False
    if (there.min_time, there.max_time) != (block.min_time, block.max_time):
        raise OutputError(f"{there.path} already exists with another time range than {block.path}")
    return True


def _refuse_overlaps(new: list[Block], present: list[Block]) -> None:
    for block in new:
        for other in present + [b for b in new if b is not block]:
            if block.min_time < other.max_time and other.min_time < block.max_time:
                raise OutputError(f"block {block.ulid} ({_range(block)}) overlaps block {other.ulid} ({_range(other)}) "
                                  f"in {other.path.parent}; refusing to install (remove the old blocks first: "
                                  "Prometheus would count both)")


def _install(block: Block, data_dir: Path) -> None:
    creating = data_dir / f"{block.ulid}{CREATING_SUFFIX}"
    shutil.rmtree(creating, ignore_errors=True)  # ours, from an interrupted install
    try:
        shutil.copytree(block.path, creating, symlinks=True)
        fault_point("install-blocks:after-copy")
        _own_like(creating, data_dir)
        fsync_tree(creating)
        publish_new_directory(creating, data_dir / block.ulid)
    except BaseException:
        shutil.rmtree(creating, ignore_errors=True)
        raise


def _own_like(root: Path, reference: Path) -> None:
    """As root, give the copy the data directory's owner (Prometheus must be able to compact it)."""
    if os.geteuid() != 0:
        return
    info = reference.stat()
    for directory, _, files in os.walk(root):
        os.chown(directory, info.st_uid, info.st_gid)
        for name in files:
            os.chown(os.path.join(directory, name), info.st_uid, info.st_gid)


def _range(block: Block) -> str:
    return f"{_iso(block.min_time)} .. {_iso(block.max_time)} UTC"


def _iso(ms: int) -> str:
    return (dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ms)).strftime("%Y-%m-%d %H:%M")

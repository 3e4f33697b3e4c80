"""A frame stored as shards: runs of consecutive rows, so that a rebuild after one post changed writes one shard of
each artifact and hard-links the others from the previous version (benchmarks/README.md, "one new post").

Where a shard ends depends on its rows alone, as rsync and restic cut files by their content: after each row whose
key (a post's path) hashes to 0 modulo ROWS_PER_SHARD. A from-scratch build and an incremental one therefore cut the
same frame into the same shards, and a new row moves no cut but its own. A shard is reused only when its rows equal
the previous version's, value for value; its files are then that version's files, linked, not rewritten.

A frame's folder holds its shards, named in row order, and a manifest of them, written last: reading concatenates
the shards the manifest lists, which gives back the frame as it was written.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

# Smaller shards make one new post cheaper and a full build's writes dearer: at 21,434 posts, 128 gave 2.7% of a full
# build for one post (256: 3.0%, against issue 14's 3%) and 1.0 s of full writes (256: 0.9 s); benchmarks/README.md.
ROWS_PER_SHARD = 128
CUT_SEED = 0  # the hash's seed: any fixed number
MANIFEST = "shards.json"
FRAME_FILE = ".parquet"  # each shard's rows; a writer may add files of its own beside it (write_frame's `also`)


@dataclass(frozen=True)
class Shard:
    name: str  # its files are <name><suffix>
    rows: int
    first: str  # its first row's key: where the previous version's shard to compare with is found


@dataclass(frozen=True)
class Written:
    shards: int
    reused: int  # linked from the previous version


def bounds(keys: pl.Series) -> list[tuple[int, int]]:
    """(start, end) of each shard: a shard ends after a row whose key hashes to 0 modulo ROWS_PER_SHARD.

    Polars' hash, in one pass over the column (a CRC-32 per key in Python took 0.01 s of each artifact's write at
    21,434 posts). It may change with a polars release; a shard is reused only when its rows are equal, so the first
    build after an upgrade would write every shard, and nothing else would change."""
    cut = (keys.hash(seed=CUT_SEED) % ROWS_PER_SHARD == 0).arg_true() + 1
    ends = cut.to_list()
    if not ends or ends[-1] != len(keys):
        ends.append(len(keys))  # the last rows, and the one empty shard of an empty frame
    return list(zip([0, *ends[:-1]], ends))


def read_manifest(folder: Path) -> list[Shard]:
    return [Shard(**shard) for shard in json.loads((folder / MANIFEST).read_text())["shards"]]


def read_frame(folder: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """The frame written to `folder`, its rows in the order they were written."""
    return pl.concat([pl.read_parquet(folder / f"{s.name}{FRAME_FILE}", columns=columns) for s in read_manifest(folder)])


def read_earlier(version: Path | None, name: str, needs: str) -> tuple[pl.DataFrame, Path] | None:
    """An earlier artifact version's frame `name` and its folder, for write_frame's `previous`; None where there is no
    version, or it stored the frame otherwise (before shards, or without the column `needs`): a build from nothing."""
    try:
        frame = read_frame(version / name) if version else None
    except (OSError, ValueError, pl.exceptions.PolarsError):  # unreadable: a build from nothing, never a stuck asset
        return None
    return (frame, version / name) if frame is not None and needs in frame.columns else None


def write_frame(
    frame: pl.DataFrame,
    folder: Path,
    key: str,
    previous: tuple[pl.DataFrame, Path] | None = None,
    also: dict[str, Callable[[pl.DataFrame, Path], None]] | None = None,
    left_out: Sequence[str] = (),
) -> Written:
    """Write `frame` to the new folder `folder`, cut by its column `key`. `previous` is an earlier version's frame and
    folder (read_frame's): a shard equal to one of its shards is linked from there. `also` maps a file suffix to a
    function writing that file from a shard's rows (sft_dataset's JSONL); its files are reused with the shard's, so
    they must depend on nothing but the rows stored. Columns `left_out` are not stored (nor compared): what they
    hold must be told by a stored one (sft's bodies, by their example_key)."""
    also = also or {}
    folder.mkdir(parents=True, exist_ok=True)
    stored = frame.drop(left_out)
    earlier_frame = previous[0].drop(left_out, strict=False) if previous else None
    # The schema too, once for every shard: DataFrame.equals compares values only, and an Int32 shard linked among
    # Int64 ones cannot be read.
    earlier = _earlier_shards(earlier_frame, previous[1]) if previous and earlier_frame.schema == stored.schema else {}
    keys = frame[key]
    shards, reused = [], 0
    for i, (start, end) in enumerate(bounds(keys)):
        rows, name = stored.slice(start, end - start), f"{i:05d}"
        first = keys[start] if end > start else ""
        match = earlier.get((first, end - start))
        if match is not None and match[0].equals(rows):
            for suffix in (FRAME_FILE, *also):
                _link(Path(f"{match[1]}{suffix}"), folder / f"{name}{suffix}")
            reused += 1
        else:
            rows.write_parquet(folder / f"{name}{FRAME_FILE}")
            for suffix, write in also.items():
                write(frame.slice(start, end - start), folder / f"{name}{suffix}")
        shards.append(Shard(name, end - start, first))
    (folder / MANIFEST).write_text(json.dumps({"key": key, "shards": [asdict(s) for s in shards]}))
    return Written(shards=len(shards), reused=reused)


def concat_files(folder: Path, suffix: str, out: Path) -> None:
    """One file of every shard's <name><suffix>, in row order (train.jsonl from its shards' pieces)."""
    with out.open("wb") as whole:
        for shard in read_manifest(folder):
            with (folder / f"{shard.name}{suffix}").open("rb") as piece:
                shutil.copyfileobj(piece, whole, 1 << 20)


def _earlier_shards(frame: pl.DataFrame, folder: Path) -> dict[tuple[str, int], tuple[pl.DataFrame, Path]]:
    """(first key, rows) → (the previous version's rows of that shard, its files' path without suffix)."""
    try:
        shards = read_manifest(folder)
    except (OSError, ValueError, TypeError):
        return {}
    if sum(s.rows for s in shards) != frame.height:
        return {}  # not the frame this folder holds: nothing is reused
    earlier, start = {}, 0
    for s in shards:
        earlier[(s.first, s.rows)] = (frame.slice(start, s.rows), folder / s.name)
        start += s.rows
    return earlier


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copyfile(source, target)

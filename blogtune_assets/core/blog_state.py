"""What the blog's posts are right now, as content hashes, and what changed since a snapshot.

The sensor and the schedule compare the blog with the snapshot the published
raw_posts was read from. Hashes, not modification times: saving a post twice
with the same text is no change, and a copy that keeps mtimes is still seen.

A snapshot also keeps each file's (size, mtime_ns, ctime_ns, inode) as it was when hashed, so a tick hashes
only files whose stat changed: 21,434 unchanged posts cost their stats, not 86 MB of reading. ctime moves on
any write and cannot be set back, so an edit that restores size and mtime (`touch -d`, `cp -p`) is seen too;
a periodic full check hashes everything anyway, for file systems whose times do not move.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from blogtune_assets.core.jekyll import post_file_hash, post_path, stat_key, walk_posts_dir

SNAPSHOT_FILE = "snapshot.parquet"
SNAPSHOT_SCHEMA = {
    "path": pl.String, "content_hash": pl.String, "size": pl.Int64, "mtime_ns": pl.Int64, "ctime_ns": pl.Int64, "inode": pl.Int64,
}  # fmt: skip
Stat = tuple[int, int, int, int]  # (size, mtime_ns, ctime_ns, inode)


@dataclass(frozen=True)
class Changes:
    added: list[str]
    changed: list[str]
    deleted: list[str]

    @property
    def count(self) -> int:
        return len(self.added) + len(self.changed) + len(self.deleted)

    def summary(self) -> str:
        return f"{len(self.added)} new, {len(self.changed)} changed, {len(self.deleted)} deleted"


@dataclass(frozen=True)
class BlogSnapshot:
    files: dict[str, str]  # path relative to the site → sha256 of the file's bytes
    # path → its stat when hashed; a file without one (a link out of the blog, unreadable) is always hashed.
    stats: dict[str, Stat] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """One hash for the whole state: raw_posts' data version and the sensor's run key."""
        h = hashlib.sha256()
        for path in sorted(self.files):
            h.update(f"{path}\0{self.files[path]}\n".encode())
        return h.hexdigest()

    def changes_since(self, before: BlogSnapshot) -> Changes:
        old, new = before.files, self.files
        return Changes(
            added=sorted(new.keys() - old.keys()),
            changed=sorted(p for p in new.keys() & old.keys() if new[p] != old[p]),
            deleted=sorted(old.keys() - new.keys()),
        )

    def write(self, folder: Path) -> None:
        rows = [(path, digest, *self.stats.get(path, (None,) * 4)) for path, digest in self.files.items()]
        pl.DataFrame(rows, schema=SNAPSHOT_SCHEMA, orient="row").write_parquet(folder / SNAPSHOT_FILE)

    @classmethod
    def read(cls, folder: Path) -> BlogSnapshot:
        frame = pl.read_parquet(folder / SNAPSHOT_FILE)
        files = dict(frame.select("path", "content_hash").iter_rows())
        if "ctime_ns" not in frame.columns:  # written before stats were kept: every file is hashed
            return cls(files)
        columns = frame.select("path", "size", "mtime_ns", "ctime_ns", "inode").iter_rows()
        stats = {path: tuple(stat) for path, *stat in columns if stat[0] is not None}
        return cls(files, stats)

    @classmethod
    def of_frames(cls, *frames: pl.DataFrame, stats: dict[str, Stat] | None = None) -> BlogSnapshot:
        """The snapshot a scan read: every file it saw, post or rejected, with the hash of the bytes it parsed
        and the stat taken before reading them (scan_site's `stats`)."""
        files = {path: digest for frame in frames for path, digest in frame.select("path", "content_hash").iter_rows()}
        return cls(files, {path: stat for path, stat in (stats or {}).items() if files.get(path)})


def file_stat(path: str | Path) -> Stat | None:
    try:
        return stat_key(os.stat(path))
    except OSError:
        return None


def take_snapshot(site_dir: Path, known: BlogSnapshot | None = None) -> BlogSnapshot:
    """Hash every post file, except those whose stat equals the one `known` hashed them at (None: a full check,
    every file read: 1.7-2.8 s for 21,434 posts, 87 MB, on 2 cores; benchmarks/sensor_tick.py).

    Paths and hashes are those scan_site records (a file it does not read hashes as ""). Each stat is taken
    before the file is read, so an edit during the read shows as a changed stat next time."""
    site_dir = Path(site_dir)
    files, stats = {}, {}
    for path in walk_posts_dir(site_dir)[0]:
        key, stat = post_path(site_dir, path), file_stat(path)
        if known is not None and stat is not None and known.stats.get(key) == stat and key in known.files:
            files[key] = known.files[key]
        else:
            files[key] = post_file_hash(site_dir, path)
        if stat is not None and files[key]:
            stats[key] = stat
    return BlogSnapshot(files, stats)

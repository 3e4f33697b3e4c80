"""What the blog's posts are right now, as content hashes, and what changed since a snapshot.

The sensor and the schedule compare the blog with the snapshot the published
raw_posts was read from. Hashes, not modification times: saving a post twice
with the same text is no change, and a copy that keeps mtimes is still seen.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from blogtune_assets.core.jekyll import find_post_files, post_file_hash, post_path

SNAPSHOT_FILE = "snapshot.parquet"
SNAPSHOT_SCHEMA = {"path": pl.String, "content_hash": pl.String}


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
        pl.DataFrame(list(self.files.items()), schema=SNAPSHOT_SCHEMA, orient="row").write_parquet(folder / SNAPSHOT_FILE)

    @classmethod
    def read(cls, folder: Path) -> BlogSnapshot:
        return cls(dict(pl.read_parquet(folder / SNAPSHOT_FILE).iter_rows()))

    @classmethod
    def of_frames(cls, *frames: pl.DataFrame) -> BlogSnapshot:
        """The snapshot a scan read: every file it saw, post or rejected, with the hash of the bytes it parsed."""
        return cls({path: digest for frame in frames for path, digest in frame.select("path", "content_hash").iter_rows()})


def take_snapshot(site_dir: Path) -> BlogSnapshot:
    """Hash every post file; about a second for a 20,000-post, 86 MB blog, and no parsing.

    Paths and hashes are those scan_site records (a file it does not read hashes as "")."""
    site_dir = Path(site_dir)
    return BlogSnapshot({post_path(site_dir, path): post_file_hash(site_dir, path) for path in find_post_files(site_dir)})

"""raw_posts and cleaned_posts: the blog as it is, then as a reader sees it."""

# No `from __future__ import annotations` here: Dagster checks the `context` parameter's annotation as a class.

import hashlib
import json
import shutil
import time
from pathlib import Path

import dagster as dg
import polars as pl

from blogtune_assets.assets.metadata import md_table
from blogtune_assets.core.blog_state import SNAPSHOT_FILE, BlogSnapshot
from blogtune_assets.core.cleaning import CleanResult, clean_posts
from blogtune_assets.core.jekyll import READER_VERSION, BlogNotFound, scan_site
from blogtune_assets.core.liquid import Cleaned, leftover_liquid
from blogtune_assets.core.shards import read_earlier, read_frame, write_frame
from blogtune_assets.resources import FULL_READ_TAG, ArtifactHome, BlogSource, RetrainPolicy

GROUP = "data"


def _counts_by(frame: pl.DataFrame, column: str) -> list[tuple[str, int]]:
    return frame.group_by(column).len().sort(["len", column], descending=[True, False]).rows()


POSTS = "posts"  # the rows, as shards (core/shards.py): a one-post rebuild writes one shard and links the others
READ_LOG = "read.json"  # when raw_posts last read every file, whatever its stat said


def _last_full_read(folder: Path) -> float:
    try:
        return float(json.loads((folder / READ_LOG).read_text())["full_read_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _content_version(result: CleanResult) -> str:
    """A hash of the result's content: equal content, equal data version, nothing downstream looks stale.

    A kept row is hashed by its path and what made its text (cleaned_by, cleaned_from), which decide the rest of
    it, as clean_posts' reuse relies on: hashing whole rows took 0.40 s at 21,434 posts."""
    h = hashlib.sha256()
    for frame, columns in ((result.kept, ["path", "cleaned_by", "cleaned_from"]), (result.dropped, list(result.dropped.columns))):
        for row in frame.select(columns).iter_rows():
            h.update(repr(row).encode())
    return h.hexdigest()


@dg.asset(group_name=GROUP, kinds={"polars", "markdown"}, code_version="2")
def raw_posts(context: dg.AssetExecutionContext, blog: BlogSource, artifacts: ArtifactHome, retrain: RetrainPolicy) -> dg.Output[Path]:
    """Every post under _posts/ (.md and the other Markdown extensions, .html) read with its frontmatter; unreadable
    files are rejected with a reason, and every other file there (images, data) is listed as not a post.

    A file whose stat is the one it was read at keeps its row unread, as the sensor trusts it, except on a full read:
    every full_check_s (BLOGTUNE_FULL_CHECK_S), and in a run the sensor launched from its own full check
    (FULL_READ_TAG), where an edit no stat shows was found."""
    published = artifacts.store.current_or_none("raw_posts")
    previous = read_earlier(published, POSTS, needs="content_hash")
    last_full_read = _last_full_read(published) if previous else 0.0
    full_read = (
        previous is None
        or context.run.tags.get(FULL_READ_TAG) == "true"
        or time.time() - last_full_read >= retrain.full_check_s
    )
    trusted = None if full_read else BlogSnapshot.read(published).stats
    started = time.time()
    try:
        scan = scan_site(
            blog.path, previous=previous[0] if previous else None, max_post_bytes=blog.max_post_bytes, previous_stats=trusted
        )
    except BlogNotFound as err:
        # A configuration mistake, not a crash: the message names the variable to fix, and retrying cannot help.
        raise dg.Failure(description=str(err), allow_retries=False) from err
    # What was read, file by file: the sensor compares the blog with it, and its digest is the data version.
    snapshot = BlogSnapshot.of_frames(scan.posts, scan.rejected, stats=scan.stats)
    with artifacts.store.new_version("raw_posts") as folder:
        written = write_frame(scan.posts, folder / POSTS, "path", previous=previous)
        scan.rejected.write_parquet(folder / "rejected.parquet")
        scan.not_posts.write_parquet(folder / "not_posts.parquet")
        snapshot.write(folder)
        (folder / READ_LOG).write_text(json.dumps({"full_read_at": started if full_read else last_full_read}))
    path = artifacts.store.current("raw_posts")
    posts = scan.posts
    return dg.Output(
        path,
        # The files and the code that read them: a new reader makes everything downstream stale.
        data_version=dg.DataVersion(f"{snapshot.digest}-{READER_VERSION}"),
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "posts_digest": snapshot.digest,
            "blog_dir": dg.MetadataValue.path(str(blog.path)),
            # Every file under _posts/ is one of: a post read, a post file rejected, a file that is not a post.
            "files_under_posts": scan.files_found + scan.not_posts.height,
            "files_found": scan.files_found,
            "posts_read": posts.height,
            "full_read": full_read,
            "shards_written": f"{written.shards - written.reused} of {written.shards}",
            "files_rejected": scan.rejected.height,
            "rejected_files": md_table(["file", "reason"], scan.rejected.select("path", "reason").rows()),
            "files_not_posts": scan.not_posts.height,
            "not_posts_by_reason": md_table(["reason", "files"], _counts_by(scan.not_posts, "reason")),
            "not_post_files": md_table(["file", "reason"], scan.not_posts.rows(), limit=50),
            "posts_by_format": md_table(["format", "posts"], _counts_by(posts, "format")),
            **{f"posts_{fmt}": n for fmt, n in _counts_by(posts, "format")},
            "posts_by_language": md_table(["language", "decided by", "posts"], posts.group_by("language", "language_from").len().sort("len", descending=True).rows()),
            **{f"posts_{lang}": n for lang, n in _counts_by(posts, "language")},
            "titles_from_slug": int(posts["title_from_slug"].sum()),
            "total_bytes": int(posts["size_bytes"].sum()),
            "preview": md_table(
                ["path", "language", "date", "title"], posts.select("path", "language", "date", "title").head(10).rows()
            ),
        },
    )


@dg.asset(group_name=GROUP, kinds={"polars"}, code_version="2")
def cleaned_posts(raw_posts: Path, blog: BlogSource, artifacts: ArtifactHome) -> dg.Output[Path]:
    """Liquid, kramdown attribute lists and images removed, raw and code kept, whitespace collapsed, short posts dropped."""
    raw = read_frame(raw_posts / POSTS)
    previous = read_earlier(artifacts.store.current_or_none("cleaned_posts"), POSTS, needs="cleaned_from")
    result = clean_posts(raw, languages=blog.languages or None, previous=previous[0] if previous else None)
    with artifacts.store.new_version("cleaned_posts") as folder:
        written = write_frame(result.kept, folder / POSTS, "path", previous=previous)
        result.dropped.write_parquet(folder / "dropped.parquet")
        shutil.copy(raw_posts / SNAPSHOT_FILE, folder / SNAPSHOT_FILE)  # which posts this was cleaned from
    path = artifacts.store.current("cleaned_posts")
    kept = result.kept
    return dg.Output(
        path,
        data_version=dg.DataVersion(_content_version(result)),
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "posts_digest": BlogSnapshot.read(raw_posts).digest,
            "posts_read": raw.height,
            "posts_kept": kept.height,
            "posts_dropped": result.dropped.height,
            "shards_written": f"{written.shards - written.reused} of {written.shards}",
            "drops_by_reason": md_table(["reason", "posts"], _counts_by(result.dropped, "reason")),
            "dropped_posts": md_table(["file", "reason"], result.dropped.select("path", "reason").rows()),
            "chars_before": int(raw["body"].str.len_chars().sum()),
            "chars_after": int(kept["chars_after"].sum()),
        },
    )


@dg.asset_check(asset=cleaned_posts, blocking=True, description="No kept body has Liquid syntax outside code and raw content.")
def no_liquid_left(cleaned_posts: Path) -> dg.AssetCheckResult:
    kept = read_frame(cleaned_posts / POSTS, columns=["path", "body", "protected"])
    offenders = []
    for path, body, protected in kept.iter_rows():
        leftovers = leftover_liquid(Cleaned(text=body, protected=protected))
        if leftovers:
            offenders.append((path, leftovers[0]))
    return dg.AssetCheckResult(
        passed=not offenders,
        metadata={"posts_with_liquid": len(offenders), "examples": md_table(["file", "context"], offenders, limit=10)},
    )

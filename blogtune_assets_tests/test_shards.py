"""Frames stored as shards: read back whole, and rewritten only where rows changed."""

from __future__ import annotations

import os

import polars as pl

from blogtune_assets.core import shards
from blogtune_assets.core.shards import read_earlier, read_frame, write_frame

POSTS = 2_000  # ~16 shards of ROWS_PER_SHARD = 128


def posts(n: int = POSTS, skip: int | None = None) -> pl.DataFrame:
    rows = [(f"_posts/en/2024-01-01-post-{i:05d}.md", f"body {i} " * 20) for i in range(n) if i != skip]
    return pl.DataFrame(rows, schema={"path": pl.String, "body": pl.String}, orient="row")


def inodes(folder) -> dict[str, int]:
    return {s.name: os.stat(folder / f"{s.name}.parquet").st_ino for s in shards.read_manifest(folder)}


def test_a_frame_reads_back_as_written_whatever_its_size(tmp_path):
    for n in (0, 1, POSTS):
        frame = posts(n)
        written = write_frame(frame, tmp_path / str(n), "path")
        assert read_frame(tmp_path / str(n)).equals(frame)
        assert written.reused == 0 and written.shards == len(shards.bounds(frame["path"]))
    assert 8 <= written.shards <= 32  # content-defined cuts, ~ROWS_PER_SHARD rows each


def test_one_new_row_rewrites_its_shard_and_links_the_rest(tmp_path):
    before, after = posts(skip=1234), posts()
    write_frame(before, tmp_path / "v1", "path")
    written = write_frame(after, tmp_path / "v2", "path", previous=(before, tmp_path / "v1"))
    write_frame(after, tmp_path / "fresh", "path")

    assert read_frame(tmp_path / "v2").equals(after)
    # The same cuts as a build from nothing: a new row moves no cut but its own.
    assert shards.read_manifest(tmp_path / "v2") == shards.read_manifest(tmp_path / "fresh")
    assert written.shards - written.reused in (1, 2)  # 2 where the new row is a cut: its shard splits in two
    old, new = set(inodes(tmp_path / "v1").values()), inodes(tmp_path / "v2")
    assert sum(inode not in old for inode in new.values()) == written.shards - written.reused  # the rest are linked


def test_a_shard_is_reused_only_when_its_rows_are_equal(tmp_path):
    """Same keys, same row counts, one value changed: that shard is written again, not linked."""
    before = posts()
    after = before.with_columns(pl.when(pl.col("path").str.contains("post-00777")).then(pl.lit("edited")).otherwise("body").alias("body"))
    write_frame(before, tmp_path / "v1", "path")
    written = write_frame(after, tmp_path / "v2", "path", previous=(before, tmp_path / "v1"))
    assert written.shards - written.reused == 1
    assert read_frame(tmp_path / "v2").equals(after)


def test_an_earlier_frame_that_is_not_the_folder_s_reuses_nothing(tmp_path):
    write_frame(posts(), tmp_path / "v1", "path")
    written = write_frame(posts(), tmp_path / "v2", "path", previous=(posts(skip=5), tmp_path / "v1"))
    assert written.reused == 0 and read_frame(tmp_path / "v2").equals(posts())


def test_files_written_beside_a_shard_are_reused_with_it_and_left_out_columns_are_not_stored(tmp_path):
    def first_words(rows: pl.DataFrame, path) -> None:
        path.write_text("".join(f"{body.split()[1]}\n" for body in rows["body"]))

    before, after = posts(skip=10), posts()
    also = {".words": first_words}
    write_frame(before.with_columns(pl.col("body").alias("text")), tmp_path / "v1", "path", also=also, left_out=["text"])
    earlier = read_earlier(tmp_path, "v1", needs="body")
    written = write_frame(after.with_columns(pl.col("body").alias("text")), tmp_path / "v2", "path", previous=earlier, also=also, left_out=["text"])
    assert written.shards - written.reused in (1, 2)
    assert read_frame(tmp_path / "v2").equals(after)  # no "text"
    joined = tmp_path / "words.txt"
    shards.concat_files(tmp_path / "v2", ".words", joined)
    assert joined.read_text().split() == [str(i) for i in range(POSTS)]


def test_an_earlier_version_without_shards_or_the_needed_column_is_no_previous(tmp_path):
    (tmp_path / "v1").mkdir()
    pl.DataFrame({"path": ["a"]}).write_parquet(tmp_path / "v1" / "posts.parquet")  # before shards
    assert read_earlier(tmp_path / "v1", "posts", needs="path") is None
    assert read_earlier(None, "posts", needs="path") is None
    write_frame(pl.DataFrame({"path": ["a"]}), tmp_path / "v2" / "posts", "path")
    assert read_earlier(tmp_path / "v2", "posts", needs="content_hash") is None
    frame, folder = read_earlier(tmp_path / "v2", "posts", needs="path")
    assert frame["path"].to_list() == ["a"] and folder == tmp_path / "v2" / "posts"


def test_equal_values_of_another_type_are_written_again_and_the_frame_reads_back(tmp_path):
    """DataFrame.equals compares values only: a shard of Int64 linked among Int32 ones made the frame unreadable."""
    before = posts().with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("tokens"))
    after = before.with_columns(pl.col("tokens").cast(pl.Int32))
    write_frame(before, tmp_path / "v1", "path")
    written = write_frame(after, tmp_path / "v2", "path", previous=(before, tmp_path / "v1"))
    assert written.reused == 0
    assert read_frame(tmp_path / "v2").schema == after.schema

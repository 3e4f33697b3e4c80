"""The three data assets materialized by Dagster on real files, checks included."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from blogtune_assets.assets.posts import POSTS
from blogtune_assets.core.jekyll import stat_key
from blogtune_assets.core.shards import read_frame
from blogtune_assets.definitions import defs
from blogtune_assets_tests.conftest import materialize_data, write_post


def assert_accounting(meta: dict[str, dict]) -> None:
    raw, cleaned, dataset = meta["raw_posts"], meta["cleaned_posts"], meta["sft_dataset"]
    assert raw["files_found"] == raw["posts_read"] + raw["files_rejected"]
    assert raw["files_under_posts"] == raw["files_found"] + raw["files_not_posts"]
    assert raw["posts_read"] == sum(raw.get(f"posts_{fmt}", 0) for fmt in ("markdown", "html"))
    assert cleaned["posts_read"] == raw["posts_read"]
    assert raw["posts_read"] == cleaned["posts_kept"] + cleaned["posts_dropped"]
    assert cleaned["posts_kept"] == dataset["train_examples"] + dataset["eval_examples"]


def test_definitions_load():
    assert {k.to_user_string() for k in defs.resolve_all_asset_keys()} >= {"raw_posts", "cleaned_posts", "sft_dataset"}


def test_sample_blog_with_bad_files(sample_blog_copy, home, monkeypatch):
    write_post(sample_blog_copy, "en/2024-01-01-not-utf8.md", b"---\ntitle: x\n---\n\xff\xfe body")
    write_post(sample_blog_copy, "en/2024-01-02-empty.md", b"")
    meta = materialize_data(sample_blog_copy, home, monkeypatch)
    assert_accounting(meta)
    raw, cleaned, dataset = meta["raw_posts"], meta["cleaned_posts"], meta["sft_dataset"]
    assert raw["files_rejected"] == 2 and "not-utf8" in raw["rejected_files"]
    assert raw["posts_en"] > 0 and raw["posts_zh"] > 0
    assert cleaned["posts_kept"] >= 30
    assert cleaned["chars_after"] < cleaned["chars_before"]
    assert dataset["train_tokens"] > dataset["eval_tokens"] > 0
    assert "data:image/png;base64" in dataset["length_histogram"]

    folder = home / "sft_dataset" / "current"
    train = [json.loads(line) for line in (folder / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(train) == dataset["train_examples"]
    assert [m["role"] for m in train[0]["conversations"]] == ["user", "assistant"]
    assert str(folder.resolve()) == dataset["path"]


def test_real_posts_of_the_reference_blog(shared_corpus_site, home, monkeypatch):
    meta = materialize_data(shared_corpus_site, home, monkeypatch)
    assert_accounting(meta)
    assert meta["raw_posts"]["files_rejected"] == 0
    kept = read_frame(home / "cleaned_posts" / "current" / POSTS)
    # A note wholly wrapped in {% raw %} keeps its bare Liquid syntax as the author's text.
    wrapped = kept.filter(pl.col("path").str.contains("id68660299871")).row(0, named=True)
    assert wrapped["body"].startswith("构建通过！")
    assert "`{% %}`" in wrapped["body"] and "{% raw %}" not in wrapped["body"]


def test_heavy_assets_run_one_at_a_time_in_the_gpu_pool(tmp_path):
    from dagster import DagsterInstance

    from blogtune_assets.definitions import all_assets

    heavy = {"base_model", "lora_adapter", "merged_model", "gguf_q4km"}
    for asset in all_assets:
        name = asset.key.to_user_string()
        if name in heavy:
            assert asset.op.pool == "gpu" and asset.tags_by_key[asset.key].get("blogtune/compute") == "gpu", name
        else:
            assert asset.op.pool is None, name
    # The shipped instance config loads and limits that pool to 1.
    (tmp_path / "dagster.yaml").write_text((Path(__file__).parents[1] / "deploy" / "dagster.yaml").read_text())
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1


def test_token_counts_are_reused_only_with_the_same_tokenizer_and_counting_code(tmp_path, monkeypatch):
    from blogtune_assets.assets.sft_dataset import COUNTED_WITH, _previous_counts, counted_with
    from blogtune_assets.core import sft
    from blogtune_assets.core.artifacts import ArtifactStore
    from blogtune_assets.core.shards import read_earlier, write_frame

    store = ArtifactStore(tmp_path / "home")
    with store.new_version("sft_dataset") as folder:
        write_frame(pl.DataFrame({"path": ["p"], "built_by": ["b"], "example_key": ["k"], "tokens": [7]}), folder / sft.EXAMPLES, "path")
        (folder / COUNTED_WITH).write_text(counted_with("tokenizer-rev-1"))
    published = read_earlier(store.current("sft_dataset"), sft.EXAMPLES, needs="built_by")
    assert _previous_counts(published, counted_with("tokenizer-rev-1")) == {"k": 7}
    assert _previous_counts(published, counted_with("tokenizer-rev-2")) is None  # another tokenizer revision
    monkeypatch.setattr(sft, "COUNTER_VERSION", "after a fix to chat_tokens.py")
    assert _previous_counts(published, counted_with("tokenizer-rev-1")) is None


def _written(home: Path) -> dict:
    """What a data build published, as a reader sees it: the frames and the JSONL bytes."""
    from blogtune_assets.core import sft

    current = {asset: home / asset / "current" for asset in ("raw_posts", "cleaned_posts", "sft_dataset")}
    return {
        "posts": read_frame(current["raw_posts"] / POSTS),
        "cleaned": read_frame(current["cleaned_posts"] / POSTS),
        "examples": sft.read_examples(current["sft_dataset"]),
        **{name: (current["sft_dataset"] / name).read_bytes() for name in ("train.jsonl", "eval.jsonl")},
    }


def test_a_new_post_rewrites_one_shard_of_each_data_asset_and_equals_a_build_from_nothing(sample_blog_copy, home, tmp_path, monkeypatch):
    from blogtune_assets.core import shards

    monkeypatch.setattr(shards, "ROWS_PER_SHARD", 4)  # the sample blog's ~40 posts in ~10 shards
    materialize_data(sample_blog_copy, home, monkeypatch)
    write_post(sample_blog_copy, "en/2030-01-01-one-more.md", "---\ntitle: One more\n---\n" + "A new post about compilers. " * 30)
    meta = materialize_data(sample_blog_copy, home, monkeypatch)
    assert not meta["raw_posts"]["full_read"]  # stats trusted: only the new file was read
    for asset in ("raw_posts", "cleaned_posts", "sft_dataset"):
        written, total = map(int, meta[asset]["shards_written"].split(" of "))
        assert 1 <= written <= 2 < total, (asset, meta[asset]["shards_written"])  # 2 where the new post is a cut
    fresh_home = tmp_path / "fresh"
    shutil.copytree(home / "base_model", fresh_home / "base_model", symlinks=True)
    materialize_data(sample_blog_copy, fresh_home, monkeypatch)
    incremental, fresh = _written(home), _written(fresh_home)
    assert incremental.keys() == fresh.keys()
    for name, value in incremental.items():
        if isinstance(value, pl.DataFrame):
            assert_frame_equal(value, fresh[name])
        else:
            assert value == fresh[name], name


def test_raw_posts_reads_every_file_when_the_sensor_asks_or_a_full_check_is_due(sample_blog_copy, home, monkeypatch):
    """An edit no stat shows (a file system whose times do not move) is read on the sensor's full-check run
    (FULL_READ_TAG) and at least every full_check_s; between them the stat is trusted, as the sensor trusts it."""
    import dagster as dg

    from blogtune_assets.assets import posts as posts_module
    from blogtune_assets.core.blog_state import BlogSnapshot
    from blogtune_assets.resources import FULL_READ_TAG, from_env

    monkeypatch.setenv("BLOGTUNE_BLOG_DIR", str(sample_blog_copy))
    monkeypatch.setenv("BLOGTUNE_HOME", str(home))
    clock = [2_000_000.0]
    monkeypatch.setattr(posts_module.time, "time", lambda: clock[0])

    def read(tags=None) -> tuple[bool, str]:
        result = dg.materialize([posts_module.raw_posts], resources=from_env(), tags=tags)
        [event] = result.get_asset_materialization_events()
        published = home / "raw_posts" / "current"
        body = read_frame(published / POSTS).filter(pl.col("path") == key)["body"][0]
        return event.materialization.metadata["full_read"].value, body

    def edit_no_stat_shows(old: str, new: str) -> None:
        post.write_text(post.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
        published = home / "raw_posts" / "current"
        snapshot = BlogSnapshot.read(published)  # the edit made invisible: the published stat is the file's new one
        BlogSnapshot(snapshot.files, {**snapshot.stats, key: stat_key(os.stat(post))}).write(published)

    post = sorted((sample_blog_copy / "_posts" / "en").glob("*.md"))[0]
    key = post.relative_to(sample_blog_copy).as_posix()
    assert read()[0]  # the first read is full
    edit_no_stat_shows("---\n\n", "---\n\nHidden edit. ")

    clock[0] += 60
    full, body = read()
    assert not full and not body.startswith("Hidden edit.")  # trusted, as the sensor's ticks between full checks
    full, body = read(tags={FULL_READ_TAG: "true"})
    assert full and body.startswith("Hidden edit.")
    edit_no_stat_shows("Hidden edit. ", "Second hidden edit. ")
    clock[0] += 3600  # BLOGTUNE_FULL_CHECK_S's default since the last full read
    full, body = read()
    assert full and body.startswith("Second hidden edit.")

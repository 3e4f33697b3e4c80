"""The three data assets materialized by Dagster on real files, checks included."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

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
    kept = pl.read_parquet(home / "cleaned_posts" / "current" / "posts.parquet")
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

    store = ArtifactStore(tmp_path / "home")
    with store.new_version("sft_dataset") as folder:
        pl.DataFrame({"example_key": ["k"], "tokens": [7]}).write_parquet(folder / "examples.parquet")
        (folder / COUNTED_WITH).write_text(counted_with("tokenizer-rev-1"))
    assert _previous_counts(store, counted_with("tokenizer-rev-1")) == {"k": 7}
    assert _previous_counts(store, counted_with("tokenizer-rev-2")) is None  # another tokenizer revision
    monkeypatch.setattr(sft, "COUNTER_VERSION", "after a fix to chat_tokens.py")
    assert _previous_counts(store, counted_with("tokenizer-rev-1")) is None

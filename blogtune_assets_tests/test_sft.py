import json

import polars as pl
import pytest

from blogtune_assets.core import sft
from blogtune_assets.core.chat_tokens import ChatEncoder
from blogtune_assets.core.tiny_tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["Hello world, this is a small corpus. 你好，世界。 fn main() {}"] * 20, vocab_size=400)


def titles(n: int, prefix: str = "Post") -> list[str]:
    return [f"{prefix} number {i}" for i in range(n)]


def test_conversation_schema_matches_the_seed():
    assert sft.to_conversation("T", "B") == {
        "conversations": [{"role": "user", "content": "T"}, {"role": "assistant", "content": "B"}]
    }


@pytest.mark.parametrize(("n", "expected"), [(1, 1), (9, 1), (50, 5), (1000, 100), (21434, 200)])
def test_eval_size_is_200_capped_at_ten_percent(n, expected):
    is_eval = sft.assign_split(titles(n))
    assert is_eval.count(True) >= 1
    # hash-based: the count is expected within binomial noise of the target
    assert abs(is_eval.count(True) - expected) <= max(3, 4 * expected**0.5)


def test_split_is_seeded_and_stable_when_posts_arrive():
    old = titles(3000)
    before = dict(zip(old, sft.assign_split(old)))
    assert before == dict(zip(old, sft.assign_split(old)))
    new = old + titles(500, prefix="New post")
    after = dict(zip(new, sft.assign_split(new)))
    # Old training posts never move to eval (eval could be contaminated otherwise).
    assert not [t for t in old if not before[t] and after[t]]
    assert sft.assign_split(old, seed=7) != sft.assign_split(old)


def test_small_blogs_are_fully_stable():
    old = titles(400)
    new = old + titles(30, prefix="Later")
    assert sft.assign_split(new)[:400] == sft.assign_split(old)


def test_repeated_titles_stay_on_one_side():
    repeated = ["Weekly Notes", "weekly  notes"] * 50 + titles(100)
    is_eval = sft.assign_split(repeated)
    assert len({is_eval[i] for i in range(100)}) == 1


def test_token_counts_follow_the_chat_template(tokenizer):
    conv = [sft.to_conversation("Hello", "world " * 50)]
    stats = sft.count_tokens(ChatEncoder(tokenizer.backend_tokenizer), pl.DataFrame({"title": ["Hello"], "body": ["world " * 50]}), max_length=16)
    rendered = tokenizer.apply_chat_template(conv[0]["conversations"], tokenize=False)
    assert stats.tokens == [len(tokenizer(rendered, add_special_tokens=False)["input_ids"])]
    assert stats.lost_to_truncation == stats.tokens[0] - 16
    assert stats.truncated_examples == 1


def test_token_counts_reuse_earlier_counts_and_match_a_full_count(tokenizer):
    cleaned = pl.DataFrame(
        {"title": ["A", "B", "C"], "body": ["alpha " * 9, "beta " * 30, "gamma"], "path": "p", "language": "en", "cleaned_by": "v", "cleaned_from": ["a", "b", "c"]}
    )
    examples = sft.build_examples(cleaned)
    full = sft.count_tokens(ChatEncoder(tokenizer.backend_tokenizer), examples, max_length=64)
    assert full.tokens == sft.count_tokens(ChatEncoder(tokenizer.backend_tokenizer), examples.select("title", "body"), 64).tokens
    earlier = dict(zip(examples["example_key"][:2], full.tokens[:2]))
    assert sft.count_tokens(ChatEncoder(tokenizer.backend_tokenizer), examples, 64, previous=earlier).tokens == full.tokens
    # A reused count is taken as it is, not recomputed: only the third example is tokenized.
    planted = {key: 1000 + i for i, key in enumerate(examples["example_key"][:2])}
    assert sft.count_tokens(ChatEncoder(tokenizer.backend_tokenizer), examples, 64, previous=planted).tokens == [1000, 1001, full.tokens[2]]


def test_jsonl_round_trip(tmp_path):
    awkward = 'quotes " and \\ backslashes, \t\x00\x1f\x7f controls, \u2028 separators, </script>, {"role": "x"}\r\n'
    rows = pl.DataFrame({"title": ["标题", "T", awkward], "body": ["正文 🎉", "B\nC", awkward * 3]})
    sft.write_jsonl(tmp_path / "x.jsonl", rows)
    lines = (tmp_path / "x.jsonl").read_text(encoding="utf-8").removesuffix("\n").split("\n")  # \u2028 stays raw
    assert len(lines) == 3 and json.loads(lines[0]) == sft.to_conversation("标题", "正文 🎉")
    assert sft.read_jsonl(tmp_path / "x.jsonl") == [sft.to_conversation(t, b) for t, b in rows.iter_rows()]
    sft.write_jsonl(tmp_path / "empty.jsonl", rows.clear())
    assert sft.read_jsonl(tmp_path / "empty.jsonl") == []


def test_length_histogram_counts_every_example():
    hist = sft.length_histogram([1, 100, 511, 512, 5000], max_length=512, bins=4)
    assert [n for _, n in hist] == [2, 0, 0, 1, 2]
    assert hist[-1][0] == "≥512"


def test_examples_built_by_other_code_lend_nothing_to_a_new_build(tmp_path, monkeypatch):
    """Kept keys, positions and JSONL pieces were carried forward forever after a fix to sft.py (found in review)."""
    cleaned = pl.DataFrame(
        {"title": ["A", "B"], "body": ["alpha", "beta"], "path": ["a", "b"], "language": "en", "cleaned_by": "v", "cleaned_from": ["a", "b"]}
    )
    before = sft.build_examples(cleaned).with_columns(pl.lit(1, dtype=pl.Int64).alias("tokens"))
    sft.write_split(tmp_path / "v1", before)
    planted = before.with_columns(pl.lit("a stale key").alias("example_key"))
    assert sft.build_examples(cleaned, previous=planted)["example_key"].to_list() == ["a stale key"] * 2  # reused as they are
    monkeypatch.setattr(sft, "BUILDER_VERSION", "after a fix to sft.py")
    again = sft.build_examples(cleaned, previous=planted).with_columns(pl.lit(1, dtype=pl.Int64).alias("tokens"))
    assert again["example_key"].to_list() == before["example_key"].to_list()
    *_, written = sft.write_split(tmp_path / "v2", again, previous=(sft.read_examples(tmp_path / "v1"), tmp_path / "v1" / sft.EXAMPLES))
    assert written.reused == 0

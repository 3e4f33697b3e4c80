"""From cleaned posts to title → body conversations, split and measured in tokens."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from blogtune_assets.core.chat_tokens import ChatEncoder
from blogtune_assets.core.code_version import code_version

# What counts an example's tokens (with the tokenizer, whose revision is keyed separately).
COUNTER_VERSION = code_version(
    "blogtune_assets.core.sft", "blogtune_assets.core.chat_tokens", "blogtune_assets.core.tiny_tokenizer", packages=("tokenizers",)
)  # tiny_tokenizer holds the control tokens' names chat_tokens encodes with

EVAL_SIZE = 200  # as in the reference run
MAX_EVAL_FRACTION = 0.10
SPLIT_SEED = 42


def to_conversation(title: str, body: str) -> dict:
    return {"conversations": [{"role": "user", "content": title}, {"role": "assistant", "content": body}]}


def split_key(title: str) -> str:
    """Posts are split by title, so a repeated title can never sit on both sides."""
    return " ".join(title.casefold().split())


def split_position(title: str, seed: int = SPLIT_SEED) -> float:
    """A post's fixed place in [0, 1): it depends on nothing but the post and the seed."""
    digest = hashlib.sha256(f"{seed}:{split_key(title)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def eval_fraction(n_posts: int, eval_size: int = EVAL_SIZE) -> float:
    """Share of posts held out: eval_size of them, but never more than 10%.

    A post is held out when its split_position is below this fraction. The
    fraction only shrinks as a blog grows, so a new post can move an old one
    from eval to train but never a trained-on post into eval.
    """
    return min(MAX_EVAL_FRACTION, eval_size / max(n_posts, 1))


def assign_split(titles: list[str], seed: int = SPLIT_SEED, eval_size: int = EVAL_SIZE) -> list[bool]:
    """True where the post is held out for evaluation; at least one post is."""
    positions = [split_position(t, seed) for t in titles]
    cut = eval_fraction(len(titles), eval_size)
    is_eval = [p < cut for p in positions]
    if positions and not any(is_eval):
        lowest = min(positions)
        is_eval = [p == lowest for p in positions]
    return is_eval


@dataclass(frozen=True)
class TokenStats:
    tokens: list[int]
    max_length: int

    @property
    def total(self) -> int:
        return sum(self.tokens)

    @property
    def lost_to_truncation(self) -> int:
        return sum(max(0, n - self.max_length) for n in self.tokens)

    @property
    def truncated_examples(self) -> int:
        return sum(n > self.max_length for n in self.tokens)


def example_key(title: str, body: str) -> str:
    """All an example's token count depends on, for a given tokenizer."""
    return hashlib.sha256(f"{title}\0{body}".encode()).hexdigest()


def count_tokens(
    encoder: ChatEncoder, conversations: list[dict], max_length: int, previous: Mapping[str, int] | None = None
) -> TokenStats:
    """Tokens of each example exactly as training encodes it (chat_tokens: markup, then plain text).

    `previous` maps example_key → tokens from an earlier count *with the same tokenizer*;
    those examples are not tokenized again.
    """
    known = previous or {}
    pairs = [(c["conversations"][0]["content"], c["conversations"][1]["content"]) for c in conversations]
    keys = [example_key(title, body) for title, body in pairs]
    todo = [i for i, key in enumerate(keys) if key not in known]
    lengths = encoder.lengths([pairs[i] for i in todo]) if todo else []
    counted = dict(zip(todo, lengths))
    return TokenStats(tokens=[counted[i] if i in counted else known[key] for i, key in enumerate(keys)], max_length=max_length)


def build_examples(cleaned: pl.DataFrame, seed: int = SPLIT_SEED, eval_size: int = EVAL_SIZE) -> pl.DataFrame:
    """One row per kept post: its conversation, its side of the split."""
    titles = cleaned["title"].to_list()
    keys = [example_key(t, b) for t, b in zip(titles, cleaned["body"].to_list())]
    return cleaned.select("path", "language", "title", "body").with_columns(
        pl.Series("is_eval", assign_split(titles, seed, eval_size), dtype=pl.Boolean),
        # Saved beside the token counts, so the next build can reuse them (count_tokens' previous).
        pl.Series("example_key", keys, dtype=pl.String),
    )


def write_jsonl(path: Path, rows: pl.DataFrame) -> None:
    """One to_conversation() per line, serialized by polars: json.dumps row by row took ~1 s at 21,434 posts."""
    turns = pl.concat_list(_turn("user", "title"), _turn("assistant", "body"))
    rows.select(turns.alias("conversations")).write_ndjson(path)


def write_split(folder: Path, examples: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """train.jsonl and eval.jsonl of build_examples' rows, by their is_eval side; the two sides."""
    train, evals = examples.filter(~pl.col("is_eval")), examples.filter(pl.col("is_eval"))
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "eval.jsonl", evals)
    return train, evals


def _turn(role: str, column: str) -> pl.Expr:
    return pl.struct(role=pl.lit(role), content=pl.col(column))


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def stop_conversations(evals: list[dict], trains: list[dict]) -> list[list[dict]]:
    """Conversations whose ends the stop probability is measured at: eval posts first, then train."""
    return [e["conversations"] for e in evals + trains]


def length_histogram(tokens: list[int], max_length: int, bins: int = 8) -> list[tuple[str, int]]:
    """Example counts by token length, in equal-width bins up to max_length plus an overflow bin."""
    width = max(1, -(-max_length // bins))
    counts = [0] * (bins + 1)
    for n in tokens:
        counts[min(n // width, bins)] += 1
    labels = [f"{i * width}–{(i + 1) * width - 1}" for i in range(bins)] + [f"≥{bins * width}"]
    return list(zip(labels, counts))

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
from blogtune_assets.core.frames import made_by
from blogtune_assets.core.shards import Written, concat_files, read_frame, write_frame

# What counts an example's tokens (with the tokenizer, whose revision is keyed separately).
COUNTER_VERSION = code_version(
    "blogtune_assets.core.sft", "blogtune_assets.core.chat_tokens", "blogtune_assets.core.tiny_tokenizer", packages=("tokenizers",)
)  # tiny_tokenizer holds the control tokens' names chat_tokens encodes with

# What builds an example row and its JSONL pieces: an earlier row built by other code lends it nothing (build_examples'
# `previous`), and its shard is written again, since its rows differ (write_split's `previous`).
BUILDER_VERSION = code_version("blogtune_assets.core.sft", "blogtune_assets.core.shards", packages=("polars",))

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
    return split_sides([split_position(t, seed) for t in titles], eval_size)


def split_sides(positions: list[float], eval_size: int = EVAL_SIZE) -> list[bool]:
    """assign_split of the posts at these split_positions."""
    cut = eval_fraction(len(positions), eval_size)
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
    """All an example's token count depends on, for a given tokenizer; what a warm start knows a trained example by."""
    return hashlib.sha256(f"{title}\0{body}".encode()).hexdigest()


def source_key(title: str, cleaned_by: str, cleaned_from: str) -> str:
    """What an example is made of, without reading its body: the title, and the cleaner and cleaning input that made
    the body (cleaned_posts' columns). Equal source keys, equal examples: build_examples reuses example_key by it.
    The parts themselves, not a hash of them: hashing took a third of a one-post rebuild's build_examples."""
    return f"{cleaned_by}\0{cleaned_from}\0{title}"


def count_tokens(
    encoder: ChatEncoder, examples: pl.DataFrame, max_length: int, previous: Mapping[str, int] | None = None
) -> TokenStats:
    """Tokens of each example (a frame with title and body, as build_examples makes) exactly as training encodes it
    (chat_tokens: markup, then plain text).

    `previous` maps example_key → tokens from an earlier count *with the same tokenizer*; those examples are not
    tokenized again, nor do their bodies become Python strings.
    """
    known = previous or {}
    if "example_key" in examples.columns:
        keys = examples["example_key"].to_list()
    else:
        keys = [example_key(title, body) for title, body in examples.select("title", "body").iter_rows()]
    todo = [i for i, key in enumerate(keys) if key not in known]
    lengths = encoder.lengths(examples.select("title", "body")[todo].rows()) if todo else []
    counted = dict(zip(todo, lengths))
    return TokenStats(tokens=[counted[i] if i in counted else known[key] for i, key in enumerate(keys)], max_length=max_length)


def build_examples(
    cleaned: pl.DataFrame, seed: int = SPLIT_SEED, eval_size: int = EVAL_SIZE, previous: pl.DataFrame | None = None
) -> pl.DataFrame:
    """One row per kept post: its conversation, its side of the split. With `previous` (earlier examples), an
    example of the same source_key keeps its example_key, and a title its split_position under the same seed: hashing
    every body and title again took 0.1 s and 0.03 s at 21,434 posts."""
    titles = cleaned["title"].to_list()
    sources = [source_key(*row) for row in zip(titles, cleaned["cleaned_by"].to_list(), cleaned["cleaned_from"].to_list())]
    known_keys, known_positions = {}, {}
    if previous is not None and "built_by" in previous.columns:
        previous = made_by(previous, "built_by", BUILDER_VERSION)
        known_keys = dict(zip(previous["source_key"].to_list(), previous["example_key"].to_list()))
        if (previous["split_seed"] == seed).all():
            known_positions = dict(zip(previous["title"].to_list(), previous["split_position"].to_list()))
    keys = [known_keys.get(source) for source in sources]
    todo = [i for i, key in enumerate(keys) if key is None]
    for i, body in zip(todo, cleaned["body"].gather(todo).to_list()):
        keys[i] = example_key(titles[i], body)
    positions = [known_positions[title] if title in known_positions else split_position(title, seed) for title in titles]
    return cleaned.select("path", "language", "title", "body").with_columns(
        pl.Series("is_eval", split_sides(positions, eval_size), dtype=pl.Boolean),
        pl.Series("split_position", positions, dtype=pl.Float64),
        pl.lit(seed, dtype=pl.Int64).alias("split_seed"),
        pl.Series("source_key", sources, dtype=pl.String),
        # Saved beside the token counts, so the next build can reuse them (count_tokens' previous).
        pl.Series("example_key", keys, dtype=pl.String),
        pl.lit(BUILDER_VERSION).alias("built_by"),
    )


def write_jsonl(path: Path, rows: pl.DataFrame) -> None:
    """One to_conversation() per line, serialized by polars: json.dumps row by row took ~1 s at 21,434 posts."""
    turns = pl.concat_list(_turn("user", "title"), _turn("assistant", "body"))
    rows.select(turns.alias("conversations")).write_ndjson(path)


EXAMPLES = "examples"  # build_examples' rows without bodies, as shards (core/shards.py), each with its JSONL pieces
SPLIT_PIECES = {".train.jsonl": False, ".eval.jsonl": True}  # a shard's piece of train.jsonl and eval.jsonl: is_eval


def write_split(
    folder: Path, examples: pl.DataFrame, previous: tuple[pl.DataFrame, Path] | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, Written]:
    """train.jsonl and eval.jsonl of build_examples' rows, by their is_eval side, and the rows (bodies left out: their
    example_key stands for them) in folder/EXAMPLES; the two sides, and how many shards were written.

    With `previous` (an earlier write_split's rows and EXAMPLES folder: shards.read_earlier), a shard whose rows are
    unchanged keeps its files, JSONL pieces included; train.jsonl and eval.jsonl are then the pieces, joined."""
    pieces = {suffix: _piece_writer(is_eval) for suffix, is_eval in SPLIT_PIECES.items()}
    written = write_frame(examples, folder / EXAMPLES, key="path", previous=previous, also=pieces, left_out=["body"])
    for suffix in SPLIT_PIECES:
        concat_files(folder / EXAMPLES, suffix, folder / suffix.removeprefix("."))
    return examples.filter(~pl.col("is_eval")), examples.filter(pl.col("is_eval")), written


def read_examples(folder: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """write_split's rows (no bodies) from an sft_dataset folder."""
    return read_frame(folder / EXAMPLES, columns=columns)


def _piece_writer(is_eval: bool):
    return lambda rows, path: write_jsonl(path, rows.filter(pl.col("is_eval") == is_eval))


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

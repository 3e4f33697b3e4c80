"""sft_dataset: title → body conversations, a stable seeded split, measured in tokens."""

from pathlib import Path

import dagster as dg
import polars as pl

from blogtune_assets.assets.metadata import bar_chart_md, md_table
from blogtune_assets.core import sft
from blogtune_assets.core.chat_tokens import ChatEncoder
from blogtune_assets.core.gpu_cost import training_hours
from blogtune_assets.core.blog_state import BlogSnapshot
from blogtune_assets.assets.posts import POSTS
from blogtune_assets.core.shards import read_earlier, read_frame
from blogtune_assets.core.tokenizer_source import counting_tokenizer
from blogtune_assets.resources import ArtifactHome, ModelProfile

PREVIEW_CHARS = 300


COUNTED_WITH = "counted_with.txt"  # the tokenizer revision and COUNTER_VERSION the token counts were made with


def counted_with(tokenizer_revision: str) -> str:
    """What token counts were made with: the tokenizer, and the code that encodes an example."""
    return f"{tokenizer_revision} {sft.COUNTER_VERSION}"


def _previous_counts(previous: tuple[pl.DataFrame, Path] | None, counted_with: str) -> dict[str, int] | None:
    """Token counts of the published version, if the same tokenizer and counting code made them."""
    if previous is None:
        return None
    examples, folder = previous
    try:
        if (folder.parent / COUNTED_WITH).read_text() != counted_with:
            return None
    except OSError:
        return None
    return dict(zip(examples["example_key"].to_list(), examples["tokens"].to_list()))


@dg.asset(group_name="data", kinds={"json"}, code_version="3")
def sft_dataset(
    context: dg.AssetExecutionContext, cleaned_posts: Path, model_profile: ModelProfile, artifacts: ArtifactHome
) -> dg.Output[Path]:
    """Each kept post as a user (title) → assistant (body) conversation, split train/eval by a seeded hash of the title."""
    profile = model_profile.settings
    settings = profile.train
    cleaned = read_frame(cleaned_posts / POSTS)
    earlier = read_earlier(artifacts.store.current_or_none("sft_dataset"), sft.EXAMPLES, needs="built_by")
    examples = sft.build_examples(
        cleaned, seed=settings.seed, eval_size=settings.eval_size, previous=earlier[0] if earlier else None
    )
    # Counts are in the tokens the model will train on, found without fetching any weights, with `tokenizers`
    # alone: this step imports neither transformers nor torch (test_imports.py), so it starts in seconds.
    counting = counting_tokenizer(profile, model_profile.base_model, log=context.log.info)
    tokenizer = counting.load()
    counts_key = counted_with(counting.revision)
    previous = _previous_counts(earlier, counts_key)
    stats = sft.count_tokens(ChatEncoder(tokenizer), examples, settings.max_length, previous=previous)
    examples = examples.with_columns(pl.Series("tokens", stats.tokens, dtype=pl.Int64))

    with artifacts.store.new_version("sft_dataset") as folder:
        train, evals, written = sft.write_split(folder, examples, previous=earlier)
        (folder / COUNTED_WITH).write_text(counts_key)
    path = artifacts.store.current("sft_dataset")

    hist = sft.length_histogram(stats.tokens, settings.max_length)
    return dg.Output(
        path,
        metadata={
            "length_table": md_table(["tokens", "examples"], hist),  # first, and unfolded; the plot below folds
            "path": dg.MetadataValue.path(str(path)),
            "profile": profile.name,
            # The weekly schedule retrains only when the blog's digest differs from this one.
            "posts_digest": BlogSnapshot.read(cleaned_posts).digest,
            "train_examples": train.height,
            "eval_examples": evals.height,
            "train_tokens": int(train["tokens"].sum()),
            "eval_tokens": int(evals["tokens"].sum()),
            "token_counts_reused": int(examples["example_key"].is_in(list(previous or {})).sum()),
            "shards_written": f"{written.shards - written.reused} of {written.shards}",
            "mean_tokens_per_example": round(stats.total / max(len(stats.tokens), 1), 1),
            "max_length": settings.max_length,
            "tokenizer": f"{counting.source} ({tokenizer.get_vocab_size(with_added_tokens=True):,} tokens)",
            "gpu_hours_estimate": md_table(
                ["GPU", f"hours for {settings.num_train_epochs:g} epochs", "throughput from"],
                [(gpu, round(hours, 2), source) for gpu, hours, source in training_hours(stats.total, settings.num_train_epochs)],
            ),
            "tokens_lost_to_truncation": stats.lost_to_truncation,
            "examples_truncated": stats.truncated_examples,
            "length_histogram": bar_chart_md(
                "Examples by token length", [label for label, _ in hist], [n for _, n in hist], "tokens", "examples"
            ),
            "preview": md_table(
                ["side", "title", "body (start)"],
                [
                    ("eval" if row["is_eval"] else "train", row["title"], row["body"][:PREVIEW_CHARS])
                    for row in examples.head(5).iter_rows(named=True)
                ],
            ),
            "first_example_json": dg.MetadataValue.json(sft.to_conversation(*examples.select("title", "body").row(0)) if examples.height else {}),
        },
    )


@dg.asset_check(asset=sft_dataset, blocking=True, description="No title appears on both sides of the train/eval split.")
def split_has_no_shared_titles(sft_dataset: Path) -> dg.AssetCheckResult:
    examples = sft.read_examples(sft_dataset, columns=["title", "is_eval"])
    keyed = examples.with_columns(pl.col("title").map_elements(sft.split_key, return_dtype=pl.String).alias("key"))
    shared = (
        keyed.group_by("key").agg(pl.col("is_eval").n_unique().alias("sides"), pl.col("title").first())
        .filter(pl.col("sides") > 1)
    )
    return dg.AssetCheckResult(
        passed=shared.height == 0,
        metadata={"shared_titles": shared.height, "titles": md_table(["title"], shared.select("title").rows(), limit=10)},
    )

"""cleaned_posts: every read post is kept or dropped with a reason."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import polars as pl

from blogtune_assets.core.code_version import code_version
from blogtune_assets.core.html_posts import html_to_markdown
from blogtune_assets.core.liquid import MIN_CHARS, clean_body

# What cleans a post: text cleaned by other code is cleaned again, not reused (clean_posts' `previous`).
CLEANER_VERSION = code_version(
    "blogtune_assets.core.cleaning", "blogtune_assets.core.liquid", "blogtune_assets.core.html_posts",
    packages=("markdownify", "beautifulsoup4"),
)  # fmt: skip

KEPT_SCHEMA = {
    "path": pl.String,
    "language": pl.String,
    "date": pl.Date,
    "title": pl.String,
    "body": pl.String,
    "chars_before": pl.Int64,
    "chars_after": pl.Int64,
    "protected": pl.List(pl.String),
    "content_hash": pl.String,
    "cleaned_by": pl.String,  # CLEANER_VERSION
    "cleaned_from": pl.String,  # cleaning_input() of what was cleaned
}
DROPPED_SCHEMA = {"path": pl.String, "reason": pl.String, "content_hash": pl.String}


@dataclass(frozen=True)
class CleanResult:
    kept: pl.DataFrame
    dropped: pl.DataFrame


def meta_drop_reason(frontmatter: str, language: str, languages: frozenset[str] | None) -> str | None:
    """Reasons that need no cleaning, so posts dropped for them are never cleaned."""
    if json.loads(frontmatter).get("published") is False:
        return "unpublished (published: false)"
    if languages is not None and language not in languages:
        return f"language '{language}' not selected"
    return None


def clean_posts(
    raw: pl.DataFrame,
    languages: list[str] | None = None,
    min_chars: int = MIN_CHARS,
    previous: CleanResult | None = None,
) -> CleanResult:
    """With `previous` (an earlier result), a kept post whose body and format are the same
    (cleaning_input), cleaned by the same code (CLEANER_VERSION), keeps its cleaned text; the drop rules are applied afresh, since the
    languages or min_chars may have changed."""
    wanted = frozenset(languages) if languages else None
    reusable = _reusable(previous.kept) if previous is not None else pl.DataFrame(schema=_REUSED_SCHEMA)
    earlier = dict(zip(reusable["cleaned_from"].to_list(), range(reusable.height)))
    earlier_chars = reusable["body"].str.len_chars().to_list()
    # Row by row only what decides a post's fate; the kept frame is then assembled by column, and reused
    # text and protected pieces are gathered from the earlier frame without becoming Python objects.
    kept_rows, sources, reused_at, fresh, dropped = [], [], [], {}, []
    columns = raw.select("path", "language", "frontmatter", "body", "format", "content_hash").iter_rows()
    for i, (path, language, frontmatter, body, format, content_hash) in enumerate(columns):
        reason = meta_drop_reason(frontmatter, language, wanted)
        if reason is None:
            source = cleaning_input(body, format)
            at = earlier.get(source)
            if at is None:
                fresh[i] = _clean(body, format)
            if (len(fresh[i][0]) if at is None else earlier_chars[at]) < min_chars:
                reason = f"too short (< {min_chars} characters after cleaning)"
        if reason:
            dropped.append((path, reason, content_hash))
            continue
        kept_rows.append(i)
        sources.append(source)
        reused_at.append(at)
    kept = _kept_frame(raw, kept_rows, sources, reused_at, fresh, reusable)
    return CleanResult(kept=kept, dropped=pl.DataFrame(dropped, schema=DROPPED_SCHEMA, orient="row"))


def _kept_frame(
    raw: pl.DataFrame, rows: list[int], sources: list[str], reused_at: list[int | None], fresh: dict, reusable: pl.DataFrame
) -> pl.DataFrame:
    """The kept posts' rows of `raw` with their cleaned text: fresh[i] where cleaned now, else reusable's row reused_at."""
    cleaned = pl.DataFrame(
        {
            "body": [fresh[i][0] if at is None else None for i, at in zip(rows, reused_at)],
            "protected": [fresh[i][1] if at is None else None for i, at in zip(rows, reused_at)],
        },
        schema={"body": pl.String, "protected": pl.List(pl.String)},
    )
    if any(at is not None for at in reused_at):
        earlier = reusable.select("body", "protected")[[0 if at is None else at for at in reused_at]]
        is_fresh = pl.Series([at is None for at in reused_at], dtype=pl.Boolean)
        cleaned = cleaned.select(
            pl.when(is_fresh).then(pl.col(name)).otherwise(earlier[name]).alias(name) for name in ("body", "protected")
        )
    return (
        raw[rows]
        .select("path", "language", "date", "title", pl.col("body").str.len_chars().alias("chars_before"), "content_hash")
        .with_columns(cleaned.get_columns())
        .with_columns(
            pl.col("body").str.len_chars().alias("chars_after"),
            pl.lit(CLEANER_VERSION).alias("cleaned_by"),
            pl.Series("cleaned_from", sources, dtype=pl.String),
        )
        .select(list(KEPT_SCHEMA))
        .cast(KEPT_SCHEMA)
    )


def _clean(body: str, format: str) -> tuple[str, list[str]]:
    # An .html post's text first becomes Markdown-like text, then is cleaned as a Markdown post is.
    cleaned = clean_body(html_to_markdown(body) if format == "html" else body)
    return cleaned.text, cleaned.protected


def cleaning_input(body: str, format: str) -> str:
    """What cleaning reads, as a key: the body as the reader produced it, and its format. Not the file's hash:
    a new reader can produce another body from the same bytes, and a renamed file another format."""
    return hashlib.sha256(f"{format}\0{body}".encode()).hexdigest()


_REUSED_SCHEMA = {"cleaned_from": pl.String, "body": pl.String, "protected": pl.List(pl.String)}


def _reusable(kept: pl.DataFrame) -> pl.DataFrame:
    if "cleaned_from" not in kept.columns:
        return pl.DataFrame(schema=_REUSED_SCHEMA)
    return kept.filter(pl.col("cleaned_by") == CLEANER_VERSION).select(list(_REUSED_SCHEMA))

"""cleaned_posts: every read post is kept or dropped with a reason."""

from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl

from blogtune_assets.core.code_version import code_version
from blogtune_assets.core.frames import gather, made_by
from blogtune_assets.core.html_posts import html_to_markdown
from blogtune_assets.core.liquid import MIN_CHARS, clean_body

# What cleans a post: text cleaned by other code is cleaned again, not reused (clean_posts' `previous`).
CLEANER_VERSION = code_version(
    "blogtune_assets.core.cleaning", "blogtune_assets.core.liquid", "blogtune_assets.core.html_posts", "blogtune_assets.core.frames",
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
    # The substring first (frontmatter_json's spelling): parsing every post's frontmatter was 0.05 s at 21,434 posts.
    if '"published": false' in frontmatter and json.loads(frontmatter).get("published") is False:
        return "unpublished (published: false)"
    if languages is not None and language not in languages:
        return f"language '{language}' not selected"
    return None


def clean_posts(
    raw: pl.DataFrame,
    languages: list[str] | None = None,
    min_chars: int = MIN_CHARS,
    previous: pl.DataFrame | None = None,
) -> CleanResult:
    """With `previous` (an earlier result's kept rows), a kept post read from the same input (cleaning_input),
    cleaned by the same code (CLEANER_VERSION), keeps its cleaned text; the drop rules are applied afresh, since the
    languages or min_chars may have changed, so earlier drops lend nothing."""
    wanted = frozenset(languages) if languages else None
    reusable = _reusable(previous) if previous is not None else pl.DataFrame(schema=_REUSED_SCHEMA)
    earlier = dict(zip(reusable["cleaned_from"].to_list(), range(reusable.height)))
    earlier_chars = reusable["body"].str.len_chars().to_list()
    # Row by row only what decides a post's fate, and bodies become Python strings only to be cleaned; the kept
    # frame is then assembled by column, reused text and protected pieces gathered from the earlier frame.
    candidates, dropped = [], []
    columns = raw.select("path", "language", "frontmatter", "format", "read_by", "content_hash").iter_rows()
    for i, (path, language, frontmatter, format, read_by, content_hash) in enumerate(columns):
        reason = meta_drop_reason(frontmatter, language, wanted)
        if reason:
            dropped.append((i, path, reason, content_hash))
        else:
            source = cleaning_input(format, read_by, content_hash)
            candidates.append((i, path, content_hash, source, earlier.get(source)))
    to_clean = [i for i, *_, at in candidates if at is None]
    todo = raw.select("body", "format")[to_clean].iter_rows()
    fresh = {i: _clean(body, format) for i, (body, format) in zip(to_clean, todo)}
    kept_rows, sources, reused_at = [], [], []
    for i, path, content_hash, source, at in candidates:
        if (len(fresh[i][0]) if at is None else earlier_chars[at]) < min_chars:
            dropped.append((i, path, f"too short (< {min_chars} characters after cleaning)", content_hash))
            continue
        kept_rows.append(i)
        sources.append(source)
        reused_at.append(at)
    kept = _kept_frame(raw, kept_rows, sources, reused_at, fresh, reusable)
    dropped = [row for _, *row in sorted(dropped)]  # in raw's order, whatever dropped them
    return CleanResult(kept=kept, dropped=pl.DataFrame(dropped, schema=DROPPED_SCHEMA, orient="row"))


def _kept_frame(
    raw: pl.DataFrame, rows: list[int], sources: list[str], reused_at: list[int | None], fresh: dict, reusable: pl.DataFrame
) -> pl.DataFrame:
    """The kept posts' rows of `raw` with their cleaned text: fresh[i] where cleaned now, else reusable's row reused_at.
    Gathered from the earlier texts followed by the fresh ones, mostly as slices (frames.gather)."""
    cleaned_now = [fresh[i] for i, at in zip(rows, reused_at) if at is None]
    texts = pl.concat([
        reusable.select("body", "protected"),
        pl.DataFrame(cleaned_now, schema={"body": pl.String, "protected": pl.List(pl.String)}, orient="row"),
    ])  # fmt: skip
    next_fresh = iter(range(reusable.height, texts.height))
    cleaned = gather(texts, [next(next_fresh) if at is None else at for at in reused_at])
    source = raw.select("path", "language", "date", "title", pl.col("body").str.len_chars().alias("chars_before"), "content_hash")
    return (
        gather(source, rows)
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


def cleaning_input(format: str, read_by: str, content_hash: str) -> str:
    """What cleaning reads, as a key: a body is made by the reader (read_by: READER_VERSION) from the file's bytes
    (content_hash), and its format says how it is cleaned. Not the file's hash alone: a new reader can produce another
    body from the same bytes, and a renamed file another format. Not a hash of the body: that read all 86 MB of
    bodies again on every build."""
    return f"{format}:{read_by}:{content_hash}"


_REUSED_SCHEMA = {"cleaned_from": pl.String, "body": pl.String, "protected": pl.List(pl.String)}


def _reusable(kept: pl.DataFrame) -> pl.DataFrame:
    if "cleaned_from" not in kept.columns:
        return pl.DataFrame(schema=_REUSED_SCHEMA)
    return made_by(kept, "cleaned_by", CLEANER_VERSION).select(list(_REUSED_SCHEMA))

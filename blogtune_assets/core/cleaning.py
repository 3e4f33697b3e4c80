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


def meta_drop_reason(row: dict, languages: frozenset[str] | None) -> str | None:
    """Reasons that need no cleaning, so posts dropped for them are never cleaned."""
    meta = json.loads(row["frontmatter"])
    if meta.get("published") is False:
        return "unpublished (published: false)"
    if languages is not None and row["language"] not in languages:
        return f"language '{row['language']}' not selected"
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
    earlier = _reusable(previous.kept) if previous is not None else {}
    kept, dropped = [], []
    for row in raw.iter_rows(named=True):
        reason = meta_drop_reason(row, wanted)
        if reason is None:
            source = cleaning_input(row["body"], row["format"])
            text, protected = earlier.get(source) or _clean(row["body"], row["format"])
            if len(text) < min_chars:
                reason = f"too short (< {min_chars} characters after cleaning)"
        if reason:
            dropped.append({"path": row["path"], "reason": reason, "content_hash": row["content_hash"]})
            continue
        kept.append(
            {
                "path": row["path"],
                "language": row["language"],
                "date": row["date"],
                "title": row["title"],
                "body": text,
                "chars_before": len(row["body"]),
                "chars_after": len(text),
                "protected": protected,
                "content_hash": row["content_hash"],
                "cleaned_by": CLEANER_VERSION,
                "cleaned_from": source,
            }
        )
    return CleanResult(kept=pl.DataFrame(kept, schema=KEPT_SCHEMA), dropped=pl.DataFrame(dropped, schema=DROPPED_SCHEMA))


def _clean(body: str, format: str) -> tuple[str, list[str]]:
    # An .html post's text first becomes Markdown-like text, then is cleaned as a Markdown post is.
    cleaned = clean_body(html_to_markdown(body) if format == "html" else body)
    return cleaned.text, cleaned.protected


def cleaning_input(body: str, format: str) -> str:
    """What cleaning reads, as a key: the body as the reader produced it, and its format. Not the file's hash:
    a new reader can produce another body from the same bytes, and a renamed file another format."""
    return hashlib.sha256(f"{format}\0{body}".encode()).hexdigest()


def _reusable(kept: pl.DataFrame) -> dict[str, tuple[str, list[str]]]:
    if "cleaned_from" not in kept.columns:
        return {}
    kept = kept.filter(pl.col("cleaned_by") == CLEANER_VERSION)
    return dict(zip(kept["cleaned_from"].to_list(), zip(kept["body"].to_list(), kept["protected"].to_list())))

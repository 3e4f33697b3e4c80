"""cleaned_posts: every read post is kept or dropped with a reason."""

from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl

from blogtune_assets.core.liquid import MIN_CHARS, clean_body

DROPPED_SCHEMA = {"path": pl.String, "reason": pl.String}


@dataclass(frozen=True)
class CleanResult:
    kept: pl.DataFrame
    dropped: pl.DataFrame


def drop_reason(row: dict, text: str, languages: frozenset[str] | None, min_chars: int) -> str | None:
    meta = json.loads(row["frontmatter"])
    if meta.get("published") is False:
        return "unpublished (published: false)"
    if languages is not None and row["language"] not in languages:
        return f"language '{row['language']}' not selected"
    if len(text) < min_chars:
        return f"too short (< {min_chars} characters after cleaning)"
    return None


def clean_posts(
    raw: pl.DataFrame, languages: list[str] | None = None, min_chars: int = MIN_CHARS
) -> CleanResult:
    wanted = frozenset(languages) if languages else None
    kept, dropped = [], []
    for row in raw.iter_rows(named=True):
        cleaned = clean_body(row["body"])
        reason = drop_reason(row, cleaned.text, wanted, min_chars)
        if reason:
            dropped.append({"path": row["path"], "reason": reason})
            continue
        kept.append(
            {
                "path": row["path"],
                "language": row["language"],
                "date": row["date"],
                "title": row["title"],
                "body": cleaned.text,
                "chars_before": len(row["body"]),
                "chars_after": len(cleaned.text),
                "protected": cleaned.protected,
            }
        )
    schema = {
        "path": pl.String,
        "language": pl.String,
        "date": pl.Date,
        "title": pl.String,
        "body": pl.String,
        "chars_before": pl.Int64,
        "chars_after": pl.Int64,
        "protected": pl.List(pl.String),
    }
    return CleanResult(kept=pl.DataFrame(kept, schema=schema), dropped=pl.DataFrame(dropped, schema=DROPPED_SCHEMA))

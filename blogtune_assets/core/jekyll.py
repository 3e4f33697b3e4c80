"""Find and read the posts of a Jekyll site, the way Jekyll itself would.

Every file found ends up either as a post or as a rejection with a reason;
nothing is skipped silently.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import frontmatter
import polars as pl
import yaml

POST_SUFFIXES = (".md", ".markdown")
# Jekyll only publishes files named YYYY-MM-DD-slug.ext.
POST_NAME = re.compile(r"^(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})-(?P<slug>.+)$")
# A folder right under _posts/ named like a language code ("en", "zh", "pt-BR").
LANGUAGE_DIR = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z]{2,4})?$")
UNKNOWN_LANGUAGE = "unknown"
BOM = b"\xef\xbb\xbf"

POST_SCHEMA = {
    "path": pl.String,
    "language": pl.String,
    "date": pl.Date,
    "slug": pl.String,
    "title": pl.String,
    "title_from_slug": pl.Boolean,
    "frontmatter": pl.String,
    "body": pl.String,
    "size_bytes": pl.Int64,
    "content_hash": pl.String,
}
# content_hash is empty for a file that could not be read at all.
REJECTED_SCHEMA = {"path": pl.String, "reason": pl.String, "content_hash": pl.String}


class NotAPost(ValueError):
    """A file under _posts/ that cannot be read as a post; the message is the reason."""


@dataclass(frozen=True)
class PostScan:
    posts: pl.DataFrame
    rejected: pl.DataFrame
    files_found: int


def find_post_files(site_dir: Path) -> list[Path]:
    posts_dir = site_dir / "_posts"
    if not posts_dir.is_dir():
        raise FileNotFoundError(f"{site_dir} is not a Jekyll site: it has no _posts/ folder")
    return sorted(p for p in posts_dir.rglob("*") if p.is_file() and p.suffix.lower() in POST_SUFFIXES)


def slug_title(slug: str) -> str:
    """Jekyll's title for a post without one: the slug's words, capitalized."""
    return " ".join(word.capitalize() for word in slug.split("-") if word)


def read_post(rel: Path, raw: bytes, content_hash: str) -> dict:
    """One row of raw_posts from a file's bytes, or NotAPost with the reason it cannot be one."""
    if not raw.strip():
        raise NotAPost("empty file")
    if b"\x00" in raw:
        raise NotAPost("binary file (contains NUL bytes)")
    try:
        text = raw.removeprefix(BOM).decode("utf-8")
    except UnicodeDecodeError as err:
        raise NotAPost(f"not UTF-8: {err.reason} at byte {err.start}") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")

    name = POST_NAME.match(rel.stem)
    if not name:
        raise NotAPost("file name is not YYYY-MM-DD-slug (Jekyll does not publish it)")
    try:
        posted = date(int(name["year"]), int(name["month"]), int(name["day"]))
    except ValueError as err:
        raise NotAPost(f"invalid date in file name: {err}") from None

    meta, body = parse_frontmatter(text)
    if not body.strip():
        raise NotAPost("no body after the frontmatter")

    title = meta.get("title")
    title = str(title).strip() if title is not None else ""
    title_from_slug = not title
    return {
        "path": rel.as_posix(),
        "language": post_language(rel, meta),
        "date": posted,
        "slug": name["slug"],
        "title": title or slug_title(name["slug"]),
        "title_from_slug": title_from_slug,
        "frontmatter": json.dumps(meta, ensure_ascii=False, default=str, sort_keys=True),
        "body": body,
        "size_bytes": len(raw),
        "content_hash": content_hash,
    }


def parse_frontmatter(text: str) -> tuple[dict, str]:
    """Split and load the YAML frontmatter with python-frontmatter's handler.

    frontmatter.loads() quietly turns a list or a scalar frontmatter into {};
    Jekyll cannot use such a post either, so it is rejected instead.
    """
    handler = frontmatter.detect_format(text, frontmatter.handlers)
    if handler is None:
        return {}, text.strip()
    try:
        head, body = handler.split(text)
    except ValueError:
        return {}, text.strip()
    try:
        meta = handler.load(head)
    except yaml.YAMLError as err:
        raise NotAPost(f"invalid YAML frontmatter: {' '.join(str(err).split())}") from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise NotAPost(f"frontmatter is a {type(meta).__name__}, not a mapping of keys")
    return meta, body.strip()


def post_language(rel: Path, meta: dict) -> str:
    """The language folder under _posts/ wins; else the `lang` key; else unknown."""
    parts = rel.parts  # ("_posts", <maybe language dir>, ..., file)
    if len(parts) > 2 and LANGUAGE_DIR.match(parts[1]):
        return parts[1]
    lang = meta.get("lang")
    return str(lang).strip() if lang else UNKNOWN_LANGUAGE


def scan_site(site_dir: str | Path, previous: pl.DataFrame | None = None) -> PostScan:
    """Read every post file; with `previous` (an earlier scan's posts), files whose path and
    bytes are unchanged keep their earlier row. Every file is still read and hashed: that is
    cheap, while parsing YAML frontmatter is what a full scan spends its time on."""
    site_dir = Path(site_dir)
    files = find_post_files(site_dir)
    unchanged = set(zip(previous["path"], previous["content_hash"])) if previous is not None else set()
    rows, rejected, reused = [], [], []
    for path in files:
        rel = path.relative_to(site_dir)
        content_hash = ""
        try:
            raw = path.read_bytes()
            content_hash = hashlib.sha256(raw).hexdigest()
            if (rel.as_posix(), content_hash) in unchanged:
                reused.append(rel.as_posix())
            else:
                rows.append(read_post(rel, raw, content_hash))
        except NotAPost as err:
            rejected.append({"path": rel.as_posix(), "reason": str(err), "content_hash": content_hash})
        except OSError as err:
            rejected.append({"path": rel.as_posix(), "reason": f"unreadable: {err.strerror}", "content_hash": ""})
    posts = pl.DataFrame(rows, schema=POST_SCHEMA)
    if reused:
        earlier = previous.select(list(POST_SCHEMA)).filter(pl.col("path").is_in(reused))
        posts = in_file_order(pl.concat([earlier, posts]), [f.relative_to(site_dir).as_posix() for f in files])
    return PostScan(posts=posts, rejected=pl.DataFrame(rejected, schema=REJECTED_SCHEMA), files_found=len(files))


def in_file_order(posts: pl.DataFrame, paths: list[str]) -> pl.DataFrame:
    # Path order (find_post_files sorts Path objects) differs from string order, e.g. "en/" vs "en-x/".
    position = pl.DataFrame({"path": paths, "_position": range(len(paths))})
    return posts.join(position, on="path").sort("_position").drop("_position")

"""Find and read the posts of a Jekyll site, the way Jekyll itself would.

Every file found ends up either as a post or as a rejection with a reason;
nothing is skipped silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from stat import S_ISLNK, S_ISREG

import frontmatter
import polars as pl
import yaml

from blogtune_assets.core.code_version import code_version
from blogtune_assets.core.frames import gather, made_by
from blogtune_assets.core.language import detect_language

# Jekyll converts these as Markdown (its default markdown_ext) and publishes .html posts as they are.
MARKDOWN_SUFFIXES = (".md", ".markdown", ".mkdown", ".mkdn", ".mkd")
HTML_SUFFIXES = (".html", ".htm")
POST_SUFFIXES = MARKDOWN_SUFFIXES + HTML_SUFFIXES
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".avif", ".bmp", ".ico")
DATA_SUFFIXES = (".json", ".yml", ".yaml", ".csv", ".tsv", ".xml", ".toml")
# Jekyll only publishes files named YYYY-MM-DD-slug.ext; its DATE_FILENAME_MATCHER takes one-digit months and days.
POST_NAME = re.compile(r"^(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})-(?P<slug>.+)$")
# Jekyll's YAML_FRONT_MATTER_REGEXP: `---` opens the frontmatter, and `---` or `...` closes it (python-frontmatter
# knows only dashes, and read a `...`-closed block as body text).
JEKYLL_FRONTMATTER = re.compile(r"\A---[ \t]*\n(?P<head>.*?\n?)^(?P<close>---|\.\.\.)[ \t]*$\n?", re.MULTILINE | re.DOTALL)
IGNORED_BY_JEKYLL = "ignored by Jekyll: a hidden (.), special (_ # ~) or backup (~) name is not published"
# A folder right under _posts/ named like a language code ("en", "zh", "pt-BR").
LANGUAGE_DIR = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z]{2,4})?$")
UNKNOWN_LANGUAGE = "unknown"
BOM = b"\xef\xbb\xbf"
# A post is a few kB; a file this large is a mistake (a dump, a binary renamed .md) and is not read.
MAX_POST_BYTES = 5_000_000

# What reads a post: a row read by other code is read again, not reused (scan_site's `previous`).
READER_VERSION = code_version(
    "blogtune_assets.core.jekyll", "blogtune_assets.core.language",
    "blogtune_assets.core.html_posts",  # an .html post's language is read from its text
    "blogtune_assets.core.frames",  # which assembles the reused rows
    packages=("python-frontmatter", "PyYAML", "py3langid", "markdownify", "beautifulsoup4"),
)

POST_SCHEMA = {
    "path": pl.String,
    "format": pl.String,  # "markdown" or "html"
    "language": pl.String,
    "language_from": pl.String,  # "folder", "frontmatter" or "text" (detected; core/language.py)
    "date": pl.Date,
    "slug": pl.String,
    "title": pl.String,
    "title_from_slug": pl.Boolean,
    "frontmatter": pl.String,
    "body": pl.String,
    "size_bytes": pl.Int64,
    "content_hash": pl.String,
    "read_by": pl.String,  # READER_VERSION
}
# content_hash is empty for a file that could not be read at all.
REJECTED_SCHEMA = {"path": pl.String, "reason": pl.String, "content_hash": pl.String}
# Files under _posts/ that are not posts at all (images, data files): listed, never read.
NOT_POST_SCHEMA = {"path": pl.String, "reason": pl.String}


class NotAPost(ValueError):
    """A file under _posts/ that cannot be read as a post; the message is the reason."""


class BlogNotFound(FileNotFoundError):
    """BLOGTUNE_BLOG_DIR does not lead to a Jekyll site with posts: a configuration error."""


@dataclass(frozen=True)
class PostScan:
    posts: pl.DataFrame
    rejected: pl.DataFrame
    files_found: int  # post files (by extension): posts + rejected
    not_posts: pl.DataFrame  # every other file under _posts/, with why it is not a post
    stats: dict[str, tuple[int, int, int, int]]  # path → (size, mtime_ns, ctime_ns, inode), taken before reading


def find_post_files(site_dir: Path) -> list[Path]:
    """The post files under _posts/ (see walk_posts_dir)."""
    return [Path(path) for path in walk_posts_dir(site_dir)[0]]


def ignored_by_jekyll(parts: Sequence[str]) -> bool:
    """Whether Jekyll's reader skips the file at these path components under _posts/, whatever its extension.

    Ruby's Dir["**/*"] never lists a dot-file or enters a dot-folder, and EntryFilter#special? and #backup? drop a
    path or file name starting with _ # ~ or ending with ~: drafts kept in _posts/_drafts/, an editor's lock file
    (.#post.md), a trash folder and post.md~ backups are not published, so they are not trained on either.
    """
    return any(_skipped_folder(part, top_level=i == 0) for i, part in enumerate(parts[:-1])) or _skipped_file(parts[-1])


def _skipped_folder(name: str, top_level: bool) -> bool:
    """Jekyll skips everything in this folder: a dot-folder anywhere, a special name right under _posts/."""
    return name.startswith(".") or (top_level and name[:1] in ("_", "#", "~"))


def _skipped_file(name: str) -> bool:
    return name[:1] in (".", "_", "#", "~") or name.endswith("~")


def _under_posts(posts_dir: str, path: str) -> list[str]:
    return path[len(posts_dir) + 1 :].split(os.sep)


def not_a_post_reason(path: str, posts_dir: str) -> str:
    if ignored_by_jekyll(_under_posts(posts_dir, path)):
        return IGNORED_BY_JEKYLL
    suffix = Path(path).suffix.lower()
    kind = "image" if suffix in IMAGE_SUFFIXES else "data file" if suffix in DATA_SUFFIXES else f"{suffix or 'extensionless'} file"
    return f"{kind}: not a post format blogtune reads ({', '.join(POST_SUFFIXES)})"


def walk_posts_dir(site_dir: Path) -> tuple[list[str], list[str]]:
    """(post files, other files) under _posts/, as paths. Post files are those with a post extension (POST_SUFFIXES)
    that Jekyll would read (ignored_by_jekyll), plus each symlink there that leads out of the blog (listed so that
    scan_site rejects it with its reason, never read or descended into).

    Strings, not Path objects: every sensor tick walks the blog, and building a Path per file was half
    of a tick at 21,434 posts (benchmarks/sensor_tick.py).

    Folder links inside the blog are followed, each real folder once, so a link to an
    enclosing folder cannot loop. The walk keeps its own stack: folders nested deeper than
    Python's recursion limit are listed too.
    """
    site_dir = Path(site_dir)
    posts_dir = site_dir / "_posts"
    fix = "set BLOGTUNE_BLOG_DIR to the Jekyll site (the folder holding _posts/)"
    if not site_dir.is_dir():
        raise BlogNotFound(f"blog folder {site_dir} does not exist: {fix}")
    if not posts_dir.is_dir():
        raise BlogNotFound(f"{site_dir} is not a Jekyll site: it has no _posts/ folder; {fix}")
    # Each folder still to list, with whether Jekyll skips all it holds: a file is then judged by its name alone,
    # not by splitting its path (a fifth of a walk at 21,434 posts: 0.075 s against 0.061).
    posts_root = str(posts_dir)
    found, others, walked, pending = [], [], {_real(posts_dir)}, [(posts_root, False)]
    while pending:
        folder, folder_skipped = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                path = entry.path
                try:
                    is_dir = entry.is_dir()
                except OSError:  # a symlink loop: listed if named like a post, then rejected as unreadable
                    is_dir = False
                if not is_dir and (
                    os.path.splitext(entry.name)[1].lower() not in POST_SUFFIXES or folder_skipped or _skipped_file(entry.name)
                ):
                    others.append(path)  # images, data files, what Jekyll skips: not posts, but listed
                    continue
                if entry.is_symlink() and leads_outside(site_dir, path):
                    found.append(path)
                elif not is_dir:
                    found.append(path)
                elif (real := _real(path)) not in walked:
                    walked.add(real)
                    pending.append((path, folder_skipped or _skipped_folder(entry.name, top_level=folder == posts_root)))
    if not found:
        raise BlogNotFound(f"{posts_dir} holds no posts (no {', '.join(POST_SUFFIXES)} files): {fix}")
    return sorted(found, key=_path_order), sorted(others, key=_path_order)


def _path_order(path: str) -> str:
    """Path order (by parts, as Path objects compare: "en/x" before "en-x/y"), as one string, which compares faster
    than a list of parts: a separator below every character compares as the end of a part."""
    return path.replace(os.sep, "\0")


def stat_key(stat: os.stat_result) -> tuple[int, int, int, int]:
    """(size, mtime_ns, ctime_ns, inode): what the sensor compares to know a file is unchanged (core/blog_state.py)."""
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


def _real(path: str | Path) -> Path:
    # Unlike Path.resolve(), realpath does not raise on a symlink loop (reading it then fails: unreadable).
    return Path(os.path.realpath(path))


def leads_outside(site_dir: Path, path: str | Path) -> bool:
    """A link whose target is outside the site (or outside _posts/, when _posts/ itself is a link)."""
    target = _real(path)
    return not any(target.is_relative_to(_real(root)) for root in (site_dir, site_dir / "_posts"))


def post_path(site_dir: Path, path: str | Path) -> str:
    """The file's path relative to the site as recorded; a name that is not UTF-8 is shown with \\x escapes."""
    # A string slice, not Path.relative_to: this runs for every file on every sensor tick.
    site, full = str(site_dir), str(path)
    rel = full[len(site) + 1 :] if full.startswith(site + os.sep) else Path(path).relative_to(site_dir).as_posix()
    return rel if rel.isascii() else rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def post_file_hash(site_dir: Path, path: str | Path) -> str:
    """sha256 of the file's bytes, streamed; empty for a file that is not read (a link out of the blog, unreadable,
    not a regular file)."""
    if os.path.islink(path) and leads_outside(site_dir, path):
        return ""
    digest = hashlib.sha256()
    try:
        if not S_ISREG(os.stat(path).st_mode):
            return ""  # opening a named pipe waits for a writer: the sensor would hang
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return ""
    return digest.hexdigest()


def slug_title(slug: str) -> str:
    """Jekyll's title for a post without one: the slug's words, capitalized."""
    return " ".join(word.capitalize() for word in slug.split("-") if word)


def read_post(rel: Path, raw: bytes, content_hash: str) -> dict:
    """One row of raw_posts from a file's bytes, or NotAPost with the reason it cannot be one."""
    try:
        rel.as_posix().encode("utf-8")
    except UnicodeEncodeError:
        raise NotAPost("file name is not UTF-8") from None
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
    format = "html" if rel.suffix.lower() in HTML_SUFFIXES else "markdown"
    language, language_from = post_language(rel, meta, body, format)
    return {
        "path": rel.as_posix(),
        "format": format,
        "language": language,
        "language_from": language_from,
        "date": posted,
        "slug": name["slug"],
        "title": title or slug_title(name["slug"]),
        "title_from_slug": title_from_slug,
        "frontmatter": frontmatter_json(meta),
        "body": body,
        "size_bytes": len(raw),
        "content_hash": content_hash,
        "read_by": READER_VERSION,
    }


def parse_frontmatter(text: str) -> tuple[dict, str]:
    """Split and load the YAML frontmatter with python-frontmatter's handler.

    frontmatter.loads() quietly turns a list or a scalar frontmatter into {};
    Jekyll cannot use such a post either, so it is rejected instead.
    """
    jekyll = JEKYLL_FRONTMATTER.match(text)
    if jekyll and jekyll["close"] == "...":
        handler, head, body = frontmatter.YAMLHandler(), jekyll["head"], text[jekyll.end() :]
    else:
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
    except ValueError as err:  # python-frontmatter also reads a JSON frontmatter ({ ... } lines)
        raise NotAPost(f"invalid JSON frontmatter: {err}") from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise NotAPost(f"frontmatter is a {type(meta).__name__}, not a mapping of keys")
    return meta, body.strip()


def frontmatter_json(meta: dict) -> str:
    """The frontmatter as a JSON object, or NotAPost when YAML holds what JSON cannot."""
    try:
        return json.dumps(_string_keys(meta), ensure_ascii=False, default=str, sort_keys=True)
    except RecursionError:
        raise NotAPost("frontmatter nests too deeply or refers to itself (a YAML alias cycle)") from None


def _string_keys(value):
    # YAML keys may be numbers, dates or null; JSON's may only be strings (and sort_keys cannot mix types).
    if isinstance(value, dict):
        return {str(k): _string_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value


def post_language(rel: Path, meta: dict, body: str, format: str = "markdown") -> tuple[str, str]:
    """(language, how it was decided): the language folder under _posts/ wins; else the `lang` key; else the
    language detected from the text (an .html post's text, not its markup or scripts); else unknown."""
    parts = rel.parts  # ("_posts", <maybe language dir>, ..., file)
    if len(parts) > 2 and LANGUAGE_DIR.match(parts[1]):
        return parts[1], "folder"
    lang = meta.get("lang")
    if lang and str(lang).strip():
        return str(lang).strip(), "frontmatter"
    if format == "html":
        from blogtune_assets.core.html_posts import html_to_markdown  # bs4 only for blogs that need it

        body = html_to_markdown(body)
    detected = detect_language(body)
    return (detected, "text") if detected else (UNKNOWN_LANGUAGE, "text (too little prose to tell)")


def scan_site(
    site_dir: str | Path,
    previous: pl.DataFrame | None = None,
    max_post_bytes: int = MAX_POST_BYTES,
    previous_stats: dict[str, tuple[int, int, int, int]] | None = None,
) -> PostScan:
    """Read every post file; with `previous` (an earlier scan's posts), files whose path and
    bytes are unchanged, and that the same code read (READER_VERSION), keep their earlier row.

    With `previous_stats` too (that scan's `stats`), a file whose stat_key is the one it had then is not even read:
    its row and hash are the earlier ones, as the sensor trusts them between full checks (core/blog_state.py).
    Without it every file is read and hashed, which is what a full check is.

    Links out of the blog and files over max_post_bytes are rejected without being read;
    their content_hash is what take_snapshot records for them (post_file_hash)."""
    site_dir = Path(site_dir)
    files, others = walk_posts_dir(site_dir)
    if previous is not None and not set(POST_SCHEMA) <= set(previous.columns):
        previous = None  # read by an older blogtune that recorded less: read everything again
    if previous is not None:
        previous = made_by(previous, "read_by", READER_VERSION)  # read by other code: read again
    earlier_hashes = dict(zip(previous["path"], previous["content_hash"])) if previous is not None else {}
    trusted = previous_stats or {}
    rows, rejected, reused, stats, keys = [], [], [], {}, []
    for path in files:
        key = post_path(site_dir, path)
        keys.append(key)
        content_hash = ""
        try:
            file_stat = os.lstat(path)  # one call where a file is no link: this runs for every post at every build
            if S_ISLNK(file_stat.st_mode):
                if leads_outside(site_dir, path):
                    raise NotAPost(f"symlink pointing outside the blog ({_real(path)}): not followed")
                file_stat = os.stat(path)
            stats[key] = stat_key(file_stat)
            if not S_ISREG(file_stat.st_mode):
                raise NotAPost("not a regular file (a named pipe, socket or device): not read")
            size = stats[key][0]
            if size > max_post_bytes:
                content_hash = post_file_hash(site_dir, path)
                raise NotAPost(f"{size:,} bytes, over the {max_post_bytes:,}-byte limit (BLOGTUNE_MAX_POST_BYTES)")
            if key in earlier_hashes and trusted.get(key) == stats[key]:
                reused.append(key)
                continue
            with open(path, "rb") as f:
                raw = f.read()
            content_hash = hashlib.sha256(raw).hexdigest()
            if earlier_hashes.get(key) == content_hash:
                reused.append(key)
            else:
                rows.append(read_post(Path(path).relative_to(site_dir), raw, content_hash))
        except NotAPost as err:
            rejected.append({"path": key, "reason": str(err), "content_hash": content_hash})
        except OSError as err:
            rejected.append({"path": key, "reason": f"unreadable: {err.strerror}", "content_hash": ""})
    posts = pl.DataFrame(rows, schema=POST_SCHEMA)
    if reused:
        earlier = previous.select(list(POST_SCHEMA))
        if len(reused) < earlier.height:
            earlier = earlier.filter(pl.col("path").is_in(reused))
        # Both are in file order already (an earlier scan's rows, a subsequence of it): only new rows need placing.
        posts = in_file_order(pl.concat([earlier, posts]), keys) if posts.height else earlier
    posts_dir = str(site_dir / "_posts")
    not_posts = pl.DataFrame(
        [{"path": post_path(site_dir, f), "reason": not_a_post_reason(f, posts_dir)} for f in others], schema=NOT_POST_SCHEMA
    )
    return PostScan(
        posts=posts, rejected=pl.DataFrame(rejected, schema=REJECTED_SCHEMA), files_found=len(files), not_posts=not_posts, stats=stats
    )


def in_file_order(posts: pl.DataFrame, paths: list[str]) -> pl.DataFrame:
    # Path order (find_post_files sorts Path objects) differs from string order, e.g. "en/" vs "en-x/".
    position = {path: i for i, path in enumerate(paths)}
    at = [position[path] for path in posts["path"].to_list()]
    return gather(posts, sorted(range(posts.height), key=at.__getitem__))

"""Bad input at scale: whatever is under _posts/, the data functions never crash and lose nothing.

The property test builds random sites (random bytes, random YAML, unbalanced and nested Liquid,
enormous lines, deep folders, names that are not UTF-8) and runs the functions the raw_posts,
cleaned_posts and sft_dataset assets call.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

import dagster as dg
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blogtune_assets.assets.posts import raw_posts
from blogtune_assets.core.blog_state import BlogSnapshot, take_snapshot
from blogtune_assets.core.cleaning import clean_posts
from blogtune_assets.core.jekyll import POST_SUFFIXES, BlogNotFound, find_post_files, ignored_by_jekyll, post_path, scan_site
from blogtune_assets.core.sft import build_examples
from blogtune_assets.resources import ArtifactHome, BlogSource, RetrainPolicy
from blogtune_assets_tests.conftest import LONG_BODY, post_text, write_post

LIQUID = [
    "{% raw %}", "{% endraw %}", "{%- raw -%}", "{% if page.x %}", "{% endif %}", "{% for p in site.posts %}",
    "{% endfor %}", "{{ page.title }}", "{{", "}}", "{%", "%}", "{% highlight python %}", "{% highlight %}",
    "{% endhighlight %}", "{% comment %}", "{% endcomment %}", "```", "```python", "~~~", "`", "``",
    "![alt]({{ site.url }}/a.png){: .wide}", "[text]({% post_url 2020-01-01-x %})", "{: .class}", "<img src=x>",
    "{% include {{ x }} %}", "\n", "\n\n", "    ", "\r\n", "\r", "---", "\ufeff",
]
body_text = st.lists(st.one_of(st.sampled_from(LIQUID), st.text(max_size=30)), max_size=40).map("".join)
yaml_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), st.dates())
yaml_value = st.recursive(
    yaml_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8) | st.integers() | st.dates(), inner, max_size=3),
    max_leaves=10,
)
frontmatter = st.one_of(
    st.dictionaries(st.sampled_from(["title", "lang", "published", "tags"]) | st.text(max_size=10), yaml_value, max_size=5).map(
        lambda meta: yaml.safe_dump(meta, allow_unicode=True)
    ),
    st.text(max_size=80),
    # Shapes YAML accepts that JSON or Parquet cannot hold, and shapes it refuses.
    st.sampled_from([
        "title: [unclosed", "- a\n- b", "a: &x [*x]", "? [a, b]\n: c", "1: a\nb: c", "2020-01-01: a",
        't: "\\ud800"', "title: !!binary aGVsbG8=", "title: !!python/object:os.system x", "[" * 200 + "]" * 200,
    ]),
)
post_body = st.one_of(
    body_text,
    # An enormous line: a minified dump pasted into a post.
    st.builds(lambda piece, n: piece * n, st.sampled_from(["word ", "{{ x }} ", "`a` ", "{% raw %}x{% endraw %}"]),
              st.integers(20_000, 200_000)),
)
# Opening and closing lines: YAML, python-frontmatter's JSON, TOML (not read), a broken fence, none.
fences = st.sampled_from([("---", "---"), ("{", "}"), ("+++", "+++"), ("--- ", "----"), ("---", ""), ("", "")])
text_post = st.builds(
    lambda fence, fm, body, encoding: f"{fence[0]}\n{fm}\n{fence[1]}\n{body}".encode(encoding, "replace"),
    fences, frontmatter, post_body, st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"]),
)
post_bytes = st.one_of(st.binary(max_size=300), text_post, text_post, text_post)
# Mostly names Jekyll publishes, so that most files get as far as their frontmatter and body.
dated_name = st.builds(lambda day, slug: f"{day:%Y-%m-%d}-{slug}", st.dates(), st.text(max_size=20))
name_stem = st.one_of(
    dated_name,
    dated_name,
    dated_name,
    st.sampled_from(["2020-13-45-bad-date", "2020-02-30-no-such-day", "0000-01-01-year-zero"]),
    st.text(min_size=1, max_size=30),
    st.binary(min_size=1, max_size=30).map(os.fsdecode),  # any bytes Linux allows in a name
).filter(lambda s: "/" not in s and "\x00" not in s)
file_name = st.builds(lambda stem, suffix: stem + suffix, name_stem, st.sampled_from([".md", ".markdown", ".MD", ".html", ".txt", ".png"]))
folders = st.lists(st.sampled_from(["en", "zh", "pt-BR", "2020", "deep", "a b", "ü", "_drafts", ".trash"]), max_size=12)
site_files = st.lists(st.tuples(folders, file_name, post_bytes), max_size=8)


def make_site(root: Path, files: list[tuple[list[str], str, bytes]]) -> set[str]:
    """Write the files under root/_posts/; the relative paths of those that are post files Jekyll would read
    (test_jekyll.py tests which names it skips)."""
    (root / "_posts").mkdir(parents=True)
    posts = set()
    for folder, name, content in files:
        path = root.joinpath("_posts", *folder, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        if path.suffix.lower() in POST_SUFFIXES and not ignored_by_jekyll([*folder, name]):
            posts.add(path.relative_to(root).as_posix().encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
    return posts


def assert_nothing_lost(site: Path, written: set[str], languages: list[str] | None) -> None:
    scan = scan_site(site)
    read, rejected = scan.posts["path"].to_list(), scan.rejected["path"].to_list()
    assert scan.files_found == len(read) + len(rejected) == len(written)
    assert set(read) | set(rejected) == written and not set(read) & set(rejected)
    every_file = {post_path(site, p) for p in (site / "_posts").rglob("*") if not p.is_dir()}
    assert set(scan.not_posts["path"]) == every_file - written  # the rest is listed, each with its reason
    assert all(reason.strip() for reason in scan.not_posts["reason"])
    assert all(reason.strip() for reason in scan.rejected["reason"])
    # What the asset writes, and what the sensor compares the blog with.
    scan.posts.write_parquet(io.BytesIO())
    scan.rejected.write_parquet(io.BytesIO())
    assert take_snapshot(site).files == BlogSnapshot.of_frames(scan.posts, scan.rejected).files

    cleaned = clean_posts(scan.posts, languages=languages)
    assert cleaned.kept.height + cleaned.dropped.height == scan.posts.height
    assert all(reason.strip() for reason in cleaned.dropped["reason"])
    cleaned.kept.write_parquet(io.BytesIO())
    examples = build_examples(cleaned.kept)
    assert examples.height == cleaned.kept.height
    assert examples["is_eval"].any() == (examples.height > 0)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files=site_files, languages=st.none() | st.lists(st.sampled_from(["en", "zh", "unknown", "fr"]), max_size=2))
def test_random_sites_never_crash_and_every_file_is_accounted_for(files, languages):
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        written = make_site(site, files)
        if not written:
            with pytest.raises(BlogNotFound, match="BLOGTUNE_BLOG_DIR"):
                scan_site(site)
            return
        assert_nothing_lost(site, written, languages)


# What the property test found: each of these crashed scan_site before.
@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("2020-01-01-alias-cycle.md", b"---\na: &x [*x]\n---\nbody", "refers to itself"),
        ("2020-01-01-json.md", b"{\nnot json\n}\nbody", "invalid JSON frontmatter"),
        (os.fsdecode(b"2020-01-01-\xff.md"), b"---\ntitle: x\n---\nbody", "not UTF-8"),
    ],
)
def test_frontmatter_and_names_that_cannot_be_stored_are_rejected(site, name, content, reason):
    (site / "_posts" / name).write_bytes(content)
    scan = scan_site(site)
    assert scan.posts.height == 0
    assert reason in scan.rejected["reason"][0]


def test_yaml_keys_that_are_not_strings_are_kept_as_strings(site):
    write_post(site, "2020-01-01-keys.md", b"---\n1: a\nb: c\n2020-01-01: d\ntitle: Keys\n---\n" + LONG_BODY.encode())
    [row] = scan_site(site).posts.iter_rows(named=True)
    assert row["title"] == "Keys" and '"1": "a"' in row["frontmatter"] and '"2020-01-01": "d"' in row["frontmatter"]


def test_folders_deeper_than_the_recursion_limit_are_read(site):
    # The limit is lowered rather than the tree made 1,000 deep: pytest's own clean-up of old
    # temporary folders (shutil.rmtree) recurses too.
    depth, limit = 300, sys.getrecursionlimit()
    write_post(site, "/".join(["d"] * depth) + "/2020-01-01-deep.md", post_text("Deep", LONG_BODY))
    sys.setrecursionlimit(depth)
    try:
        titles = scan_site(site).posts["title"].to_list()
    finally:
        sys.setrecursionlimit(limit)
    assert titles == ["Deep"]


# --- symlinks, size limit, configuration errors ---


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the blog, with a post-looking file, that no symlink may lead the scan into."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "2020-01-01-secret.md").write_text(post_text("Secret", LONG_BODY))
    return folder


def test_symlinks_out_of_the_blog_are_rejected_not_followed(site, outside):
    write_post(site, "en/2020-01-01-good.md", post_text("Good", LONG_BODY))
    (site / "_posts" / "en" / "2020-01-02-leak.md").symlink_to(outside / "2020-01-01-secret.md")
    (site / "_posts" / "elsewhere").symlink_to(outside, target_is_directory=True)
    scan = scan_site(site)
    assert scan.posts["title"].to_list() == ["Good"]
    reasons = dict(scan.rejected.select("path", "reason").iter_rows())
    assert set(reasons) == {"_posts/en/2020-01-02-leak.md", "_posts/elsewhere"}
    assert all("symlink pointing outside the blog" in why for why in reasons.values())
    assert scan.files_found == 3
    assert take_snapshot(site).files == BlogSnapshot.of_frames(scan.posts, scan.rejected).files


def test_symlinks_inside_the_blog_are_followed_and_cannot_loop(site):
    drafts = site / "_drafts"
    drafts.mkdir()
    (drafts / "2020-01-03-draft.md").write_text(post_text("Draft", LONG_BODY))
    write_post(site, "en/2020-01-01-good.md", post_text("Good", LONG_BODY))
    (site / "_posts" / "en" / "2020-01-02-linked.md").symlink_to(drafts / "2020-01-03-draft.md")
    (site / "_posts" / "drafts").symlink_to(drafts, target_is_directory=True)
    (site / "_posts" / "en" / "loop").symlink_to(site / "_posts", target_is_directory=True)
    (site / "_posts" / "en" / "2020-01-04-self.md").symlink_to(site / "_posts" / "en" / "2020-01-04-self.md")
    scan = scan_site(site)
    assert sorted(scan.posts["path"]) == ["_posts/drafts/2020-01-03-draft.md", "_posts/en/2020-01-01-good.md", "_posts/en/2020-01-02-linked.md"]
    assert scan.rejected.select("path", "reason").rows() == [("_posts/en/2020-01-04-self.md", "unreadable: Too many levels of symbolic links")]


def test_files_over_the_size_limit_are_rejected_unread(site):
    write_post(site, "2020-01-01-small.md", post_text("Small", LONG_BODY))
    big = write_post(site, "2020-01-02-big.md", post_text("Big", LONG_BODY * 100))
    scan = scan_site(site, max_post_bytes=10_000)
    assert scan.posts["title"].to_list() == ["Small"]
    [(path, reason, content_hash)] = scan.rejected.rows()
    assert path == "_posts/2020-01-02-big.md" and "over the 10,000-byte limit (BLOGTUNE_MAX_POST_BYTES)" in reason
    assert content_hash == take_snapshot(site).files[path] != ""
    assert big.stat().st_size > 10_000 and scan_site(site).posts.height == 2  # the default limit is far larger


@pytest.mark.parametrize("layout", ["missing", "no _posts", "empty _posts", "no post files"])
def test_a_misconfigured_blog_dir_is_a_clear_error(tmp_path, layout):
    blog = tmp_path / "blog"
    if layout != "missing":
        blog.mkdir()
    if layout in ("empty _posts", "no post files"):
        (blog / "_posts").mkdir()
    if layout == "no post files":
        (blog / "_posts" / "logo.png").write_bytes(b"\x89PNG")
    with pytest.raises(BlogNotFound, match="BLOGTUNE_BLOG_DIR") as err:
        find_post_files(blog)
    assert str(blog) in str(err.value)


def test_raw_posts_fails_with_the_variable_to_fix(tmp_path):
    missing = tmp_path / "no-such-blog"
    result = dg.materialize(
        [raw_posts],
        resources={"blog": BlogSource(blog_dir=str(missing)), "artifacts": ArtifactHome(home=str(tmp_path / "home")), "retrain": RetrainPolicy()},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    description = failure.step_failure_data.user_failure_data.description
    assert "BLOGTUNE_BLOG_DIR" in description and str(missing) in description

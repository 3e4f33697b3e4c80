import os
import signal
from datetime import date

import polars as pl
import pytest

from blogtune_assets.core.cleaning import clean_posts
from blogtune_assets.core.blog_state import take_snapshot
from blogtune_assets.core.jekyll import IGNORED_BY_JEKYLL, scan_site, slug_title
from blogtune_assets_tests.conftest import LONG_BODY, post_text, write_post


def test_reads_posts_with_language_date_slug_and_frontmatter(site):
    write_post(site, "en/2021-03-06-trying-rust.md", post_text("Trying Rust", LONG_BODY, lang="en", tags="[rust]"))
    write_post(site, "zh/2022-01-02-ni-hao.markdown", post_text("你好", "中文正文" * 30))
    scan = scan_site(site)
    assert scan.files_found == 2 and scan.rejected.height == 0
    rows = {r["slug"]: r for r in scan.posts.iter_rows(named=True)}
    rust = rows["trying-rust"]
    assert rust["language"] == "en"
    assert rust["date"] == date(2021, 3, 6)
    assert rust["title"] == "Trying Rust"
    assert rust["path"] == "_posts/en/2021-03-06-trying-rust.md"
    assert '"tags": ["rust"]' in rust["frontmatter"]
    assert rust["body"].startswith("This paragraph")
    assert rust["size_bytes"] > len(LONG_BODY)
    assert len(rust["content_hash"]) == 64
    assert rows["ni-hao"]["language"] == "zh"


def test_language_falls_back_to_lang_key_then_the_text(site):
    write_post(site, "2020-01-01-with-lang.md", post_text("A", LONG_BODY, lang="fr"))
    write_post(site, "2020-01-02-no-lang.md", post_text("B", LONG_BODY))
    write_post(site, "2020/2020-01-03-year-folder.md", post_text("C", LONG_BODY, lang="de"))
    write_post(site, "2020-01-04-only-code.md", post_text("D", "```python\nprint('hello world, and more words here')\n```"))
    langs = {slug: (lang, src) for slug, lang, src in scan_site(site).posts.select("slug", "language", "language_from").iter_rows()}
    assert langs == {
        "with-lang": ("fr", "frontmatter"),
        "no-lang": ("en", "text"),
        "year-folder": ("de", "frontmatter"),
        "only-code": ("unknown", "text (too little prose to tell)"),
    }


CHINESE = "今天我们讨论如何在自己的博客上训练一个语言模型。首先需要把文章整理成对话格式，然后选择合适的学习率和训练轮数。"
CODE = "```python\nfrom transformers import AutoModelForCausalLM\nmodel = AutoModelForCausalLM.from_pretrained('base')\nmodel.train()\n```\n"


def test_a_blog_without_language_folders_gets_each_posts_language_from_its_text(site):
    """A Chinese blog without language folders came out as 186 posts of language `unknown`."""
    write_post(site, "2021-01-01-english.md", post_text("E", LONG_BODY))
    write_post(site, "2021-01-02-chinese.md", post_text("C", CHINESE * 3))
    # Mostly English code by characters, Chinese prose: the code says nothing about the language.
    write_post(site, "2021-01-03-mixed.md", post_text("M", (CODE * 4) + CHINESE + " 使用 PyTorch 和 LoRA。"))
    posts = scan_site(site).posts
    assert dict(posts.select("slug", "language").iter_rows()) == {"english": "en", "chinese": "zh", "mixed": "zh"}
    assert set(posts["language_from"]) == {"text"}
    kept = clean_posts(posts, languages=["zh"]).kept  # BLOGTUNE_LANGUAGES filters on the detected language
    assert sorted(kept["path"]) == ["_posts/2021-01-02-chinese.md", "_posts/2021-01-03-mixed.md"]


def test_detection_agrees_with_the_language_folders_of_the_real_blog(shared_corpus_site):
    """The real blog's posts, their folders hidden: the detector must name the folder's language."""
    from blogtune_assets.core.language import detect_language

    posts = scan_site(shared_corpus_site).posts
    agree = sum(detect_language(body) == language for body, language in posts.select("body", "language").iter_rows())
    assert set(posts["language"]) == {"en", "zh"} and agree / posts.height >= 0.95, (agree, posts.height)


def test_missing_title_comes_from_slug_like_jekyll(site):
    write_post(site, "en/2020-05-05-hello-big-world.md", post_text(None, LONG_BODY))
    write_post(site, "en/2020-05-06-blank.md", post_text("", LONG_BODY))
    posts = scan_site(site).posts
    titles = dict(posts.select("slug", "title").iter_rows())
    assert titles == {"hello-big-world": "Hello Big World", "blank": "Blank"}
    assert posts["title_from_slug"].to_list() == [True, True]
    assert slug_title("a--b-c") == "A B C"


def test_bom_and_crlf_are_normalised(site):
    write_post(site, "en/2020-01-01-bom.md", b"\xef\xbb\xbf" + post_text("Bom", LONG_BODY).replace("\n", "\r\n").encode())
    row = scan_site(site).posts.row(0, named=True)
    assert row["title"] == "Bom" and "\r" not in row["body"]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("2020-01-01-empty.md", b"", "empty file"),
        ("2020-01-01-blank.md", b"  \n\n ", "empty file"),
        ("2020-01-01-binary.md", b"---\ntitle: x\n---\n\x00\x01\x02", "binary file"),
        ("2020-01-01-latin1.md", "---\ntitle: café\n---\nun café noir".encode("latin-1"), "not UTF-8"),
        ("2020-01-01-bad-yaml.md", b"---\ntitle: [unclosed\n---\nbody text", "invalid YAML frontmatter"),
        ("2020-01-01-list-yaml.md", b"---\n- a\n- b\n---\nbody text", "not a mapping"),
        ("2020-01-01-no-body.md", b"---\ntitle: Only frontmatter\n---\n\n", "no body"),
        ("notes-without-date.md", post_text("x", LONG_BODY).encode(), "YYYY-MM-DD-slug"),
        ("2020-13-45-bad-date.md", post_text("x", LONG_BODY).encode(), "invalid date"),
    ],
)
def test_bad_files_are_rejected_with_reason(site, name, content, reason):
    write_post(site, f"en/{name}", content)
    write_post(site, "en/2020-02-02-good.md", post_text("Good", LONG_BODY))
    scan = scan_site(site)
    assert scan.files_found == 2
    assert scan.posts["slug"].to_list() == ["good"]
    [(path, why)] = scan.rejected.select("path", "reason").rows()
    assert path == f"_posts/en/{name}" and reason in why


def test_every_file_found_is_read_or_rejected(sample_blog_copy):
    write_post(sample_blog_copy, "en/2020-01-01-broken.md", b"\xff\xfe not utf8")
    (sample_blog_copy / "_posts" / "en" / "image.png").write_bytes(b"\x89PNG")  # not a post file: not counted
    scan = scan_site(sample_blog_copy)
    assert scan.files_found == scan.posts.height + scan.rejected.height
    assert scan.rejected["path"].to_list() == ["_posts/en/2020-01-01-broken.md"]


def test_a_folder_without_posts_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no _posts/ folder"):
        scan_site(tmp_path)


def test_rescan_reuses_unchanged_rows_and_matches_a_full_scan(sample_blog_copy, monkeypatch):
    from blogtune_assets.core import jekyll

    before = scan_site(sample_blog_copy)
    posts_dir = sample_blog_copy / "_posts"
    edited, removed = sorted(posts_dir.glob("en/*.md"))[:2]
    edited.write_text(edited.read_text(encoding="utf-8").replace("---\n\n", "---\n\nEdited. ", 1), encoding="utf-8")
    removed.unlink()
    write_post(sample_blog_copy, "en/2030-01-01-new-post.md", post_text("New", LONG_BODY))
    write_post(sample_blog_copy, "zh-TW/2030-01-02-folder-sorting.md", post_text("Sorted", LONG_BODY))
    write_post(sample_blog_copy, "en/2030-01-03-broken.md", b"\xff not utf8")

    original, parsed = jekyll.read_post, []

    def counting_read(rel, *args):
        parsed.append(rel.name)
        return original(rel, *args)

    monkeypatch.setattr(jekyll, "read_post", counting_read)
    again = scan_site(sample_blog_copy, previous=before.posts)
    assert sorted(parsed) == sorted([edited.name, "2030-01-01-new-post.md", "2030-01-02-folder-sorting.md", "2030-01-03-broken.md"])

    monkeypatch.undo()
    fresh = scan_site(sample_blog_copy)
    assert again.posts.equals(fresh.posts)
    assert again.rejected.equals(fresh.rejected) and again.files_found == fresh.files_found



def test_a_file_whose_stat_is_unchanged_keeps_its_row_unread_and_one_whose_stat_changed_is_read(sample_blog_copy):
    """previous_stats is how raw_posts skips reading 21,434 unchanged files; a full read (no stats) reads them all."""
    from blogtune_assets.core.jekyll import post_path, stat_key

    before = scan_site(sample_blog_copy)
    hidden, edited = sorted((sample_blog_copy / "_posts").glob("en/*.md"))[:2]
    for post in (hidden, edited):
        post.write_text(post.read_text(encoding="utf-8").replace("---\n\n", "---\n\nEdited. ", 1), encoding="utf-8")
    # As on a file system whose times do not move: the hidden edit left the stat the scan recorded.
    stats = {**before.stats, post_path(sample_blog_copy, hidden): stat_key(os.stat(hidden))}
    trusting = scan_site(sample_blog_copy, previous=before.posts, previous_stats=stats)
    bodies = dict(trusting.posts.select("path", "body").iter_rows())
    assert not bodies[post_path(sample_blog_copy, hidden)].startswith("Edited.")  # not read: its stat said unchanged
    assert bodies[post_path(sample_blog_copy, edited)].startswith("Edited.")
    assert trusting.stats == scan_site(sample_blog_copy).stats
    full = scan_site(sample_blog_copy, previous=before.posts)
    assert dict(full.posts.select("path", "body").iter_rows())[post_path(sample_blog_copy, hidden)].startswith("Edited.")
    assert full.posts.equals(scan_site(sample_blog_copy).posts)


HTML_POST = """---
title: An HTML post
---
<h2>Why</h2>
<p>Jekyll publishes <a href="https://jekyllrb.com">.html posts</a> as they are; a reader sees this text, and the
model should too. It is long enough to be kept after cleaning, with a few more words.</p>
<script>trackVisitor();</script><style>h2 { color: red }</style><!-- a note to self -->
<ul><li>first point</li><li>second point</li></ul>
<pre><code>print("code kept")</code></pre>
"""


def test_html_posts_are_read_and_every_other_file_is_listed(site):
    """One real blog had 95 of its 461 posts as .html: neither read nor reported, files_found said 366."""
    write_post(site, "en/2021-01-01-markdown.md", post_text("M", LONG_BODY))
    write_post(site, "en/2021-01-02-html.html", HTML_POST)
    (site / "_posts" / "en" / "diagram.png").write_bytes(b"\x89PNG\r\n")
    (site / "_posts" / "data.yml").write_text("a: 1\n")
    scan = scan_site(site)
    assert dict(scan.posts.select("slug", "format").iter_rows()) == {"markdown": "markdown", "html": "html"}
    assert scan.files_found == 2 and scan.rejected.height == 0
    reasons = dict(scan.not_posts.iter_rows())
    assert reasons.keys() == {"_posts/en/diagram.png", "_posts/data.yml"}
    assert reasons["_posts/en/diagram.png"].startswith("image") and reasons["_posts/data.yml"].startswith("data file")

    body = clean_posts(scan.posts).kept.filter(pl.col("path").str.ends_with(".html"))["body"][0]
    assert "## Why" in body and "- first point" in body and 'print("code kept")' in body
    assert "Jekyll publishes [.html posts](https://jekyllrb.com) as they are" in body  # a link, as a Markdown post writes it
    assert not any(hidden in body for hidden in ("trackVisitor", "color: red", "a note to self", "<p>", "<h2>"))


def test_a_new_reader_reads_every_post_again(sample_blog_copy, monkeypatch):
    from blogtune_assets.core import jekyll

    before = scan_site(sample_blog_copy)
    original, parsed = jekyll.read_post, []
    monkeypatch.setattr(jekyll, "read_post", lambda rel, *args: parsed.append(rel) or original(rel, *args))
    scan_site(sample_blog_copy, previous=before.posts)
    assert parsed == []  # same code, same bytes: every row reused
    monkeypatch.setattr(jekyll, "READER_VERSION", "after a fix to jekyll.py")
    again = scan_site(sample_blog_copy, previous=before.posts)
    assert len(parsed) == before.files_found and set(again.posts["read_by"]) == {"after a fix to jekyll.py"}


def test_code_in_an_html_posts_liquid_highlight_keeps_its_indentation_and_angle_brackets(site):
    code = "List<String> names = new ArrayList<>();\n    if (x < 3) {\n        names.add(\"a\");\n    }"
    body = f"<p>Some text about Java generics, long enough to be kept after cleaning, with more words here.</p>\n{{% highlight java %}}\n{code}\n{{% endhighlight %}}\n<p>After.</p>"
    write_post(site, "en/2021-01-03-java.html", post_text("Java", body))
    cleaned = clean_posts(scan_site(site).posts).kept["body"][0]
    assert f"```java\n{code}\n```" in cleaned


def test_language_detection_takes_linear_time_on_pathological_text():
    import time

    from blogtune_assets.core.language import detect_language

    for unit in ("{% x ", "{{ y ", "<a ", "`b "):
        started = time.perf_counter()
        detect_language("Words of a post in English, long enough to judge. " + unit * 1_000_000)
        assert time.perf_counter() - started < 5, unit  # a scan to the end at each opener took minutes


def test_what_jekyll_does_not_publish_is_listed_not_read(site):
    """Drafts in _posts/_drafts/, a trash folder, an editor's lock file and backups: Jekyll skips them, so must blogtune."""
    write_post(site, "en/2024-01-05-normal.md", post_text("Normal", LONG_BODY))
    ignored = [
        "_drafts/2024-06-01-half-written.md",
        ".obsidian-trash/2023-03-01-deleted.md",
        "en/.git-stash/2023-04-01-old.md",
        "en/.#2024-01-05-normal.md",
        "en/2024-01-05-normal.md~",
        "en/#2024-01-05-normal.md#",
    ]
    for rel in ignored:
        write_post(site, rel, post_text("Not published", LONG_BODY))
    write_post(site, "en/_notes/2024-02-01-published.md", post_text("Published", LONG_BODY))  # Jekyll reads this one
    scan = scan_site(site)
    assert scan.posts["path"].to_list() == ["_posts/en/2024-01-05-normal.md", "_posts/en/_notes/2024-02-01-published.md"]
    assert scan.files_found == 2 and scan.rejected.height == 0
    assert dict(scan.not_posts.iter_rows()) == {f"_posts/{rel}": IGNORED_BY_JEKYLL for rel in ignored}


def test_one_digit_months_and_days_are_posts_as_in_jekyll(site):
    write_post(site, "en/2024-1-5-one-digit.md", post_text("One digit", LONG_BODY))
    (post,) = scan_site(site).posts.iter_rows(named=True)
    assert post["date"] == date(2024, 1, 5) and post["slug"] == "one-digit"


def test_frontmatter_closed_with_dots_is_frontmatter(site):
    write_post(site, "en/2024-02-01-dots.md", "---\ntitle: Dots\npublished: false\n...\n" + LONG_BODY)
    write_post(site, "en/2024-02-02-dashes.md", "---\ntitle: Dashes\n---\n" + LONG_BODY + "\n...\nafter a YAML end marker\n")
    posts = {row["slug"]: row for row in scan_site(site).posts.iter_rows(named=True)}
    assert posts["dots"]["title"] == "Dots" and posts["dots"]["body"] == LONG_BODY
    assert '"published": false' in posts["dots"]["frontmatter"]
    assert posts["dashes"]["title"] == "Dashes" and posts["dashes"]["body"].endswith("after a YAML end marker")


def test_a_named_pipe_is_rejected_not_waited_on(site):
    write_post(site, "en/2024-01-05-normal.md", post_text("Normal", LONG_BODY))
    os.mkfifo(site / "_posts" / "en" / "2024-01-06-pipe.md")

    class Hung(Exception):  # not TimeoutError: that is an OSError, which the scan records as "unreadable" and goes on
        pass

    def hung(*_):
        raise Hung("opened the named pipe and waited for a writer")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        scan = scan_site(site)
        snapshot = take_snapshot(site)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert scan.rejected.rows() == [("_posts/en/2024-01-06-pipe.md", "not a regular file (a named pipe, socket or device): not read", "")]
    assert len(snapshot.files) == 2

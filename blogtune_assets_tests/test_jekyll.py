from datetime import date

import pytest

from blogtune_assets.core.jekyll import scan_site, slug_title
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


def test_language_falls_back_to_lang_key_then_unknown(site):
    write_post(site, "2020-01-01-with-lang.md", post_text("A", LONG_BODY, lang="fr"))
    write_post(site, "2020-01-02-no-lang.md", post_text("B", LONG_BODY))
    write_post(site, "2020/2020-01-03-year-folder.md", post_text("C", LONG_BODY, lang="de"))
    langs = dict(scan_site(site).posts.select("slug", "language").iter_rows())
    assert langs == {"with-lang": "fr", "no-lang": "unknown", "year-folder": "de"}


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


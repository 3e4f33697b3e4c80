import polars as pl

from blogtune_assets.core import cleaning
from blogtune_assets.core.cleaning import clean_posts
from blogtune_assets.core.jekyll import scan_site
from blogtune_assets_tests.conftest import LONG_BODY, post_text, write_post


def test_posts_are_kept_or_dropped_with_reason(site):
    write_post(site, "en/2020-01-01-kept.md", post_text("Kept", LONG_BODY + " {{ site.url }}"))
    write_post(site, "en/2020-01-02-short.md", post_text("Short", "Testing the new theme. {{ site.url }}"))
    write_post(site, "en/2020-01-03-image-only.md", post_text("Pic", "![x](/a.png)\n{: .centered }\n*Caption*"))
    write_post(site, "en/2020-01-04-draft.md", post_text("Draft", LONG_BODY, published="false"))
    write_post(site, "fr/2020-01-05-french.md", post_text("Français", LONG_BODY))
    raw = scan_site(site).posts
    result = clean_posts(raw, languages=["en"])
    assert result.kept["title"].to_list() == ["Kept"]
    assert "{{" not in result.kept["body"][0]
    reasons = dict(result.dropped.select("path", "reason").rows())
    assert reasons == {
        "_posts/en/2020-01-02-short.md": "too short (< 100 characters after cleaning)",
        "_posts/en/2020-01-03-image-only.md": "too short (< 100 characters after cleaning)",
        "_posts/en/2020-01-04-draft.md": "unpublished (published: false)",
        "_posts/fr/2020-01-05-french.md": "language 'fr' not selected",
    }
    assert raw.height == result.kept.height + result.dropped.height


def test_every_language_is_kept_by_default(site):
    write_post(site, "en/2020-01-01-a.md", post_text("A", LONG_BODY))
    write_post(site, "zh/2020-01-01-b.md", post_text("B", "这是一段足够长的中文正文。" * 12))
    assert sorted(clean_posts(scan_site(site).posts).kept["language"]) == ["en", "zh"]


def test_recleaning_reuses_unchanged_posts_and_matches_a_full_run(sample_blog_copy, monkeypatch):

    before = clean_posts(scan_site(sample_blog_copy).posts)
    edited = sorted((sample_blog_copy / "_posts").glob("zh/*.md"))[0]
    edited.write_text(edited.read_text(encoding="utf-8") + "\n补充一段。{{ site.url }}\n", encoding="utf-8")
    write_post(sample_blog_copy, "en/2030-01-01-new.md", post_text("New", LONG_BODY))
    write_post(sample_blog_copy, "en/2030-01-02-short.md", post_text("Short", "Too short."))
    raw = scan_site(sample_blog_copy).posts

    original, cleaned = cleaning.clean_body, []

    def counting_clean(body):
        cleaned.append(body)
        return original(body)

    monkeypatch.setattr(cleaning, "clean_body", counting_clean)
    again = clean_posts(raw, previous=before.kept)
    # The edited post and the two new ones; dropped posts (two short ones in the sample) are not reused.
    assert len(cleaned) == 3 + before.dropped.height
    monkeypatch.undo()
    fresh = clean_posts(raw)
    assert again.kept.equals(fresh.kept) and again.dropped.equals(fresh.dropped)
    # Drop rules are applied afresh: a changed language selection is honoured.
    only_en = clean_posts(raw, languages=["en"], previous=before.kept)
    assert only_en.kept.equals(clean_posts(raw, languages=["en"]).kept)


def test_a_new_cleaner_cleans_every_post_again(sample_blog_copy, monkeypatch):
    """Reuse was keyed by the raw file's hash alone: a fix to liquid.py never reached unchanged posts."""
    raw = scan_site(sample_blog_copy).posts
    before = clean_posts(raw)
    original, cleaned = cleaning.clean_body, []
    monkeypatch.setattr(cleaning, "clean_body", lambda body: cleaned.append(body) or original(body))
    clean_posts(raw, previous=before.kept)
    assert len(cleaned) == before.dropped.height  # same code: every kept post's text reused
    cleaned.clear()
    monkeypatch.setattr(cleaning, "CLEANER_VERSION", "after a fix to liquid.py")
    again = clean_posts(raw, previous=before.kept)
    assert len(cleaned) == before.kept.height + before.dropped.height
    assert set(again.kept["cleaned_by"]) == {"after a fix to liquid.py"}


def test_text_read_by_another_reader_is_cleaned_again(sample_blog_copy, monkeypatch):
    """Cleaned text is reused by the file's bytes and the reader that made its body from them (cleaning_input):
    a fixed reader can make another body from the same bytes."""
    raw = scan_site(sample_blog_copy).posts
    before = clean_posts(raw)
    original, cleaned = cleaning.clean_body, []
    monkeypatch.setattr(cleaning, "clean_body", lambda body: cleaned.append(body) or original(body))
    clean_posts(raw.with_columns(pl.lit("a fixed reader").alias("read_by")), previous=before.kept)
    assert len(cleaned) == before.kept.height + before.dropped.height


def test_a_post_renamed_from_md_to_html_is_cleaned_as_html(site):
    """Reuse keyed by the file's bytes kept the Markdown cleaning of a file renamed .html (same bytes)."""
    body = "<p>" + LONG_BODY + "</p>"
    write_post(site, "en/2020-01-01-renamed.md", post_text("Renamed", body))
    before = clean_posts(scan_site(site).posts)
    assert "<p>" in before.kept["body"][0]  # as Markdown, the tag is text
    (site / "_posts/en/2020-01-01-renamed.md").rename(site / "_posts/en/2020-01-01-renamed.html")
    again = clean_posts(scan_site(site).posts, previous=before.kept)
    assert "<p>" not in again.kept["body"][0] and again.kept["body"][0].startswith(LONG_BODY.split()[0])

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
    reasons = dict(result.dropped.rows())
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

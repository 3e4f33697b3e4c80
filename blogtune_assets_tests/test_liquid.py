import pytest

from blogtune_assets.core.liquid import Cleaned, clean_body, leftover_liquid


def clean(text: str) -> str:
    return clean_body(text).text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Go to {{ site.url }}/about now", "Go to /about now"),
        ("a {{- page.title -}} b", "a  b"),
        ("a {% include note.html content='x' %} b", "a  b"),
        ("a {%- if page.comments -%}shown{%- endif -%} b", "a shown b"),
        ("before\n{% include figure.html\n   src='x.png'\n   caption='multi line' %}\nafter", "before\n\nafter"),
    ],
)
def test_liquid_tags_and_output_are_removed(body, expected):
    assert clean(body) == expected


def test_comment_blocks_lose_their_content():
    assert clean("keep {% comment %}private\nnote {{ x }}{% endcomment %}this") == "keep this"
    assert clean("keep {%- comment -%}private{%- endcomment -%} this") == "keep  this"


def test_raw_keeps_content_verbatim_and_drops_markers():
    body = "Intro {{ site.url }}\n{% raw %}Use {{ user.name }} and {% for x in y %}{% endraw %}\nEnd"
    assert clean(body) == "Intro\nUse {{ user.name }} and {% for x in y %}\nEnd"
    assert clean("{%- raw -%}{{ a }}{%- endraw -%}") == "{{ a }}"


def test_a_post_wholly_wrapped_in_raw_keeps_code_with_liquid():
    body = "{% raw %}\n\nBuild passed!\n\n```liquid\n{% if x %}{{ y }}{% endif %}\n```\n\nBare `{% %}` text.\n\n{% endraw %}\n"
    result = clean_body(body)
    assert result.text == "Build passed!\n\n```liquid\n{% if x %}{{ y }}{% endif %}\n```\n\nBare `{% %}` text."
    assert leftover_liquid(result) == []


def test_highlight_becomes_a_fenced_block():
    body = "Code:\n{% highlight ruby linenos %}\ndef hi\n  puts {a: 1}\nend\n{% endhighlight %}\nDone"
    assert clean(body) == "Code:\n```ruby\ndef hi\n  puts {a: 1}\nend\n```\nDone"


def test_links_to_liquid_targets_keep_their_text():
    assert clean("See [my Rust post]({% post_url 2021-03-06-trying-rust %}).") == "See my Rust post."
    assert clean("See [home]({{ site.baseurl }}/index.html).") == "See home."
    assert clean("See [docs](https://example.com).") == "See [docs](https://example.com)."
    assert clean("At [{{ site.url }}/archive/]({{ site.baseurl }}/archive/).") == "At /archive/."


def test_attribute_lists_and_images_are_removed():
    body = (
        "![A cat](/assets/cat.png)\n{: .centered }\n\n"
        "*Figure 1: the setup*{: .caption }\n\n"
        '![]({{ site.url }}/assets/bar.jpg){: width="400" }\n'
        '<img src="x.png" alt="x">\nText'
    )
    assert clean(body) == "*Figure 1: the setup*\n\nText"


def test_braces_in_code_fences_and_inline_code_survive():
    body = (
        "```rust\nfn main() {\n    println!(\"{}\", 2 + 3);\n}\n```\n\n"
        "~~~js\nconst o = {{ a: 1 }};\n~~~\n\nInline `{{ not liquid }}` stays."
    )
    result = clean_body(body)
    assert result.text == body
    assert leftover_liquid(result) == []


def test_raw_markers_inside_code_are_consumed():
    assert clean("```\n{% raw %}{{ x }}{% endraw %}\n```") == "```\n{{ x }}\n```"


def test_unclosed_fence_protects_to_the_end():
    assert clean("text\n```\n{{ kept }}") == "text\n```\n{{ kept }}"


def test_whitespace_collapses():
    assert clean("a  \r\n\r\n\r\n\r\nb\t\n\n\n\nc\n\n") == "a\n\nb\n\nc"


def test_stray_openers_are_dropped_and_leftovers_detected():
    assert clean("an unterminated {% tag and {{ output") == "an unterminated  tag and  output"
    leaked = Cleaned(text="oops {{ site.url }} left", protected=[])
    assert leftover_liquid(leaked) == ["oops {{ site.url }} left"]
    code = Cleaned(text="ok\n```\n{{ x }}\n```", protected=["```\n{{ x }}\n```"])
    assert leftover_liquid(code) == []


def test_first_character_guard_changes_nothing(shared_corpus_site, monkeypatch):
    """The guard in front of the scanner only skips text; without it every real post cleans the same."""
    import re

    from blogtune_assets.core import liquid
    from blogtune_assets.core.jekyll import scan_site

    bodies = scan_site(shared_corpus_site).posts["body"].to_list()
    guarded = [liquid.clean_body(b) for b in bodies]
    unguarded = re.compile(liquid._START.pattern.removeprefix(liquid._FIRST_CHAR), liquid._START.flags)
    monkeypatch.setattr(liquid, "_START", unguarded)
    assert [liquid.clean_body(b) for b in bodies] == guarded

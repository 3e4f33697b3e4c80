import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.liquid_worst_case import PATTERNS
from blogtune_assets.core import liquid
from blogtune_assets.core.liquid import Cleaned, clean_body, collapse_whitespace, leftover_liquid


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


def test_a_piece_of_whitespace_hides_no_liquid_and_makes_none():
    # Each piece is taken out where it stands: removing raw content "\n" from the whole text once joined "{\n%" into `{%`.
    result = clean_body("a {\n% b {% raw %}\n{% endraw %}")
    assert result == Cleaned(text="a {\n% b", protected=["\n"])
    assert leftover_liquid(result) == []


def cleaned_trying_every_position(body: str) -> Cleaned:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(liquid, "_CANDIDATE", re.compile(".", re.DOTALL))
        return clean_body(body)


def test_the_candidate_guard_changes_nothing_on_real_posts(shared_corpus_site):
    """The guard in front of the scanner only skips text; trying every position cleans every real post the same."""
    from blogtune_assets.core.jekyll import scan_site

    for body in scan_site(shared_corpus_site).posts["body"].to_list():
        assert cleaned_trying_every_position(body) == clean_body(body)


# What the scanner reads: Liquid, code, raw blocks, fences, links, images, IALs and text. No lone `{` or `%`, which
# can meet another across removed markup and leave an opener that was never in the post ("{![a](x){" -> "{{").
SYNTAX = [
    "{%", "%}", "{{", "}}", "{%-", "-%}", " raw ", " endraw ", " comment ", " endcomment ", " highlight ruby ",
    " endhighlight ", "`", "``", "```", "~~~", "\n", "\n\n", "   ", "\t", "![a](", "[t](", "]", "(", ")", "{:", "}",
    "<img ", ">", "x", "中", "\r\n",
]  # fmt: skip
bodies = st.lists(st.sampled_from(SYNTAX), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(body=bodies)
def test_any_mix_of_syntax_cleans_to_collapsed_text_with_no_liquid_left(body):
    result = clean_body(body)
    assert collapse_whitespace(result.text) == result.text
    assert leftover_liquid(result) == []
    # leftover_liquid finds each protected piece after the one before: they are in the text, in order.
    pos = 0
    for piece in result.protected:
        pos = result.text.index(collapse_whitespace(piece), pos) + len(collapse_whitespace(piece))
    assert cleaned_trying_every_position(body) == result


@pytest.mark.parametrize(
    ("body", "text", "protected"),
    [  # what the one-regex scanner made of small versions of the inputs that took it hours at 5 MB
        ("{% x {% x {% x ", "x  x  x", []),
        ("{{ x {{ x {{ x ", "x  x  x", []),
        ("![a]({{ ![a]({{ ![a]({{ ", "![a]( ![a]( ![a](", []),
        ("[t]({% [t]({% [t]({% ", "[t]( [t]( [t](", []),
        ("`a `a `a ", "`a `a `a", ["`a `"]),
        ("{% raw %}{% raw %}{% raw %}", "{% raw %}{% raw %}", ["{% raw %}{% raw %}"]),
        ("<img <img <img ", "<img <img <img", []),
        ("{: {: {: ", "{: {: {:", []),
        ("`````````", "`````````", ["`````````"]),
        ("x```````", "x```````", []),
        ("[a [a [a ", "[a [a [a", []),
        ("![a](x![a](x![a](x", "![a](x![a](x![a](x", []),
        ("{% highlight x     y", "highlight x     y", []),
        ("     x", "x", []),
        ("`a ``a ```a ````a", "`a ``a ```a ````a", []),
        # An unmatched run is tried again less its first backtick, and so on.
        ("x ```` y ``` z", "x ```` y ``` z", ["``` y ```"]),
        ("a ``` b `` c ```", "a ``` b `` c ```", ["``` b `` c ```"]),
        # A Liquid url reaches past newlines and `)` to the first closer after which the url can end.
        ("![a]({{ ![b]({{ x }})", "", []),
        ("![a]({{ x\n}} ) )", ")", []),
        ("![a]({{ }}\n![b]({{ }})\n)", ")", []),
        ("[t]({% x %}\n{% y %} z)", "t", []),
        ("{%  raw  -%}x{% endraw %}", "x", ["x"]),
        ("  ```\n{{ x }}\n   ```\nafter", "```\n{{ x }}\n   ```\nafter", ["  ```\n{{ x }}\n   ```"]),
        ("![a](x){: .c } y", "y", []),
    ],
)
def test_pathological_shapes_clean_as_they_always_did(body, text, protected):
    assert clean_body(body) == Cleaned(text=text, protected=protected)


def test_what_a_reader_never_sees_is_removed_and_code_keeps_it():
    """HTML comments, scripts, styles and kramdown comments: a .html post lost them (html_posts.py), a Markdown post kept
    them, private notes and API keys included."""
    body = (
        "Intro.\n<!-- TODO: ask Bob; salary 123k -->\nVisible.<!--more-->\n{::comment}\nPrivate note.\n{:/comment}\n"
        '<SCRIPT type="text/javascript">var apiKey = "sk-live-X";</script >\n<style>.x{color:red}</style>\n'
        "```html\n<!-- in code -->\n<script>alert(1)</script>\n```\nInline `<!-- kept -->`. {::comment}short{:/} Unclosed <!-- stays"
    )
    cleaned = clean_body(body)
    assert cleaned.text == (
        "Intro.\n\nVisible.\n\n```html\n<!-- in code -->\n<script>alert(1)</script>\n```\nInline `<!-- kept -->`.  Unclosed <!-- stays"
    )
    assert cleaned.protected == ["```html\n<!-- in code -->\n<script>alert(1)</script>\n```", "`<!-- kept -->`"]


# One line of each shape of benchmarks/liquid_worst_case.py, at 1 MB: the one-regex scanner took minutes to hours on
# each but three. The benchmark measures 5 MB; here that would cost half a minute in all.
LINE = 1_000_000


@pytest.mark.parametrize("make", PATTERNS.values(), ids=PATTERNS.keys())
def test_cleaning_takes_linear_time_on_pathological_lines(make):
    body = make(LINE)
    started = time.perf_counter()
    leftover_liquid(clean_body(body))
    assert time.perf_counter() - started < 20  # ~1 s; the one-regex scanner took from minutes to hours


def test_an_html_posts_verbatim_blocks_are_put_back_in_one_pass():
    """core/html_posts.py sets Liquid raw and highlight blocks aside for this module; putting 100,000 back took a replace
    over the whole text each (minutes)."""
    from blogtune_assets.core.html_posts import _put_back

    blocks = [f"{{% raw %}}{i}{{% endraw %}}" for i in range(100_000)]
    text = " ".join(f"BLOGTUNEVERBATIM{i}X" for i in range(len(blocks)))
    started = time.perf_counter()
    assert _put_back(text, blocks) == " ".join(f"\n\n{block}\n\n" for block in blocks)
    assert time.perf_counter() - started < 20

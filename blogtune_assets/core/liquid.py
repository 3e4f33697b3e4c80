"""Turn a Jekyll post body into the text a reader sees, minus markup.

A single left-to-right scan over the body: at each position the earliest
construct wins, so ``{% raw %}`` inside a code fence stays code and a fence
inside ``{% raw %}`` stays raw, as in Jekyll. Code and raw content are the
author's text and are kept verbatim; Liquid, kramdown attribute lists and
images are removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TAG_OPEN = r"\{%-?\s*"
_TAG_CLOSE = r"\s*-?%\}"

# Every construct below starts with one of these characters (a fence with up to three spaces
# of indent). Checking that first lets the search skip plain text without trying each
# alternative at every position: cleaning runs ~3x faster (benchmarks/data_pipeline.py).
_FIRST_CHAR = r"(?=[ \t]{1,3}[`~]|[`~{!\[<])"
# Constructs that start somewhere in the text; the scanner dispatches on the group name.
_START = re.compile(
    _FIRST_CHAR
    + "(?:"
    + "|".join(
        [
            r"(?P<fence>^[ \t]{0,3}(?P<fence_mark>`{3,}|~{3,})[^\n]*$)",
            # Inline code may wrap lines but not cross a blank line (a paragraph break).
            r"(?P<inline_code>(?P<ticks>`+)(?!`)(?:[^\n]|\n(?!\n))*?(?<!`)(?P=ticks)(?!`))",
            rf"(?P<raw>{_TAG_OPEN}raw{_TAG_CLOSE})",
            rf"(?P<comment>{_TAG_OPEN}comment{_TAG_CLOSE})",
            rf"(?P<highlight>{_TAG_OPEN}highlight\s+(?P<lang>[\w+#.-]+)[^%]*?{_TAG_CLOSE})",
            # ![alt](url){: ial} with a plain or Liquid url, and an optional trailing IAL.
            r"(?P<image>!\[[^\]\n]*\]\((?:\{\{.*?\}\}|\{%.*?%\}|[^)\n])*\)(?:\{:[^}\n]*\})?)",
            # [text]({% post_url x %}) or [text]({{ site.url }}/x): keep the text.
            r"(?P<liquid_link>\[(?P<link_text>[^\]\n]*)\]\(\s*(?:\{\{.*?\}\}|\{%.*?%\})[^)\n]*\))",
            r"(?P<html_image><img\b[^>]*>)",
            r"(?P<tag>\{%.*?%\})",
            r"(?P<output>\{\{.*?\}\})",
            r"(?P<ial>\{:[^}\n]*\})",
            # An opener never closed: Jekyll would fail the build; drop the delimiter only.
            r"(?P<stray>\{%|\{\{)",
        ]
    )
    + ")",
    re.MULTILINE | re.DOTALL,
)
_END = {
    "raw": re.compile(rf"{_TAG_OPEN}endraw{_TAG_CLOSE}"),
    "comment": re.compile(rf"{_TAG_OPEN}endcomment{_TAG_CLOSE}"),
    "highlight": re.compile(rf"{_TAG_OPEN}endhighlight{_TAG_CLOSE}"),
}
# Inside code Jekyll still consumes raw markers; they are not the author's text.
_RAW_MARKER = re.compile(rf"{_TAG_OPEN}(?:end)?raw{_TAG_CLOSE}")
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")
_LIQUID = re.compile(r"\{%|\{\{")

MIN_CHARS = 100
_PROTECTED = frozenset({"fence", "inline_code", "raw", "highlight"})


@dataclass
class Cleaned:
    text: str
    # Verbatim pieces (raw content, code) that may legitimately contain Liquid syntax.
    protected: list[str] = field(default_factory=list)


def clean_body(body: str) -> Cleaned:
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    protected: list[str] = []
    pos = 0
    while True:
        m = _START.search(body, pos)
        if m is None:
            out.append(body[pos:])
            break
        out.append(body[pos : m.start()])
        kind = m.lastgroup  # the outer alternative: it closes after its inner groups
        piece, pos = _HANDLERS[kind](body, m)
        if kind in _PROTECTED:
            protected.append(piece)
        out.append(piece)
    return Cleaned(text=collapse_whitespace("".join(out)), protected=protected)


def _fence(body: str, m: re.Match) -> tuple[str, int]:
    mark = m.group("fence_mark")
    closing = re.compile(rf"^[ \t]{{0,3}}{re.escape(mark[0])}{{{len(mark)},}}[ \t]*$", re.MULTILINE)
    end = closing.search(body, m.end())
    stop = end.end() if end else len(body)
    return _RAW_MARKER.sub("", body[m.start() : stop]), stop


def _inline_code(body: str, m: re.Match) -> tuple[str, int]:
    return m.group(0), m.end()


def _block(kind: str):
    def handle(body: str, m: re.Match) -> tuple[str, int]:
        end = _END[kind].search(body, m.end())
        inner = body[m.end() : end.start() if end else len(body)]
        stop = end.end() if end else len(body)
        if kind == "comment":
            return "", stop
        if kind == "highlight":
            code = _RAW_MARKER.sub("", inner).strip("\n")
            return f"```{m.group('lang')}\n{code}\n```", stop
        return inner, stop

    return handle


def _drop(body: str, m: re.Match) -> tuple[str, int]:
    return "", m.end()


def _link_text(body: str, m: re.Match) -> tuple[str, int]:
    # The text can hold Liquid too: [{{ site.url }}/archive]({{ site.baseurl }}/archive)
    return clean_body(m.group("link_text")).text, m.end()


_HANDLERS = {
    "fence": _fence,
    "inline_code": _inline_code,
    "raw": _block("raw"),
    "comment": _block("comment"),
    "highlight": _block("highlight"),
    "image": _drop,
    "html_image": _drop,
    "liquid_link": _link_text,
    "tag": _drop,
    "output": _drop,
    "ial": _drop,
    "stray": _drop,
}


def collapse_whitespace(text: str) -> str:
    text = _TRAILING_SPACE.sub("", text)
    return _BLANK_RUNS.sub("\n\n", text).strip()


def leftover_liquid(cleaned: Cleaned) -> list[str]:
    """Liquid openers left in the text outside its code and raw pieces (should be none)."""
    text = cleaned.text
    for piece in sorted(cleaned.protected, key=len, reverse=True):
        text = text.replace(collapse_whitespace(piece), "").replace(piece, "")
    return [text[max(0, m.start() - 20) : m.end() + 20] for m in _LIQUID.finditer(text)]

"""An .html post as the Markdown-like text the rest of the pipeline reads.

Jekyll publishes an .html post as it is (after Liquid); a reader sees its text. Headings, lists, code blocks
and links' text are kept as Markdown; scripts, styles and comments are dropped with their content.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, Comment
from markdownify import MarkdownConverter

# Elements whose content a reader never sees as text.
INVISIBLE = ("script", "style", "noscript", "template", "iframe", "svg")
# Liquid blocks whose content is verbatim (code): HTML parsing would collapse their whitespace and take
# `List<String>` for a tag. They are set aside, then put back for core/liquid.py to turn into fences.
_VERBATIM_OPEN = re.compile(r"\{%-?\s*(highlight|raw)\b[^%]*%\}")
_VERBATIM_CLOSE = {name: re.compile(rf"\{{%-?\s*end{name}\s*-?%\}}") for name in ("highlight", "raw")}
_PLACEHOLDER = re.compile("BLOGTUNEVERBATIM[0-9]+X")


def _set_verbatim_aside(html: str) -> tuple[str, list[str]]:
    """(html with each verbatim block replaced by a placeholder, the blocks). Linear: each search starts where
    the last block ended; an unclosed block runs to the end, as core/liquid.py reads it."""
    out, blocks, pos = [], [], 0
    while (opened := _VERBATIM_OPEN.search(html, pos)) is not None:
        closed = _VERBATIM_CLOSE[opened.group(1)].search(html, opened.end())
        end = closed.end() if closed else len(html)
        out.append(html[pos : opened.start()])
        out.append(f"<div>BLOGTUNEVERBATIM{len(blocks)}X</div>")
        blocks.append(html[opened.start() : end])
        pos = end
    out.append(html[pos:])
    return "".join(out), blocks


def html_to_markdown(html: str) -> str:
    html, blocks = _set_verbatim_aside(html)
    soup = BeautifulSoup(html, "html.parser")  # Python's own parser: no C library to install
    for element in soup.find_all(INVISIBLE):
        element.decompose()
    for comment in soup.find_all(string=lambda text: isinstance(text, Comment)):
        comment.extract()
    # Escaping would add backslashes to text the model should see as written (snake_case, a*b).
    converter = MarkdownConverter(heading_style="ATX", bullets="-", escape_asterisks=False, escape_underscores=False, escape_misc=False)
    text = converter.convert_soup(soup).strip()
    return _put_back(text, blocks)


def _put_back(text: str, blocks: list[str]) -> str:
    """Each block in place of the first occurrence of its placeholder, in one pass over the text: a replace per block
    read the whole text again for each block (13 s for 640 kB of short raw blocks, four times that for twice as many)."""
    placeholders = {f"BLOGTUNEVERBATIM{i}X": block for i, block in enumerate(blocks)}

    def block(m: re.Match) -> str:
        found = placeholders.pop(m.group(), None)
        return m.group() if found is None else f"\n\n{found}\n\n"

    return _PLACEHOLDER.sub(block, text)

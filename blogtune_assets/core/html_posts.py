"""An .html post as the Markdown-like text the rest of the pipeline reads.

Jekyll publishes an .html post as it is (after Liquid); a reader sees its text. Headings, lists, code blocks
and links' text are kept as Markdown; scripts, styles and comments are dropped with their content.
"""

from __future__ import annotations

from bs4 import BeautifulSoup, Comment
from markdownify import MarkdownConverter

# Elements whose content a reader never sees as text.
INVISIBLE = ("script", "style", "noscript", "template", "iframe", "svg")


def html_to_markdown(html: str) -> str:
    soup = BeautifulSoup(html, "html.parser")  # Python's own parser: no C library to install
    for element in soup.find_all(INVISIBLE):
        element.decompose()
    for comment in soup.find_all(string=lambda text: isinstance(text, Comment)):
        comment.extract()
    # Escaping would add backslashes to text the model should see as written (snake_case, a*b).
    converter = MarkdownConverter(heading_style="ATX", bullets="-", escape_asterisks=False, escape_underscores=False, escape_misc=False)
    return converter.convert_soup(soup).strip()

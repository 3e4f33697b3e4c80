"""The language of a post that neither a language folder nor a `lang` key names, detected from its text."""

from __future__ import annotations

import re

# Code, Liquid and markup say nothing about the language a post is written in, and an English-heavy code
# block would outvote a short Chinese paragraph.
NOT_PROSE = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`\n]*`|\{%.*?%\}|\{\{.*?\}\}|<[^>\n]*>|https?://\S+", re.DOTALL)
# Enough prose to decide; the detector's cost grows with the text.
SAMPLE_CHARS = 4000


def prose_sample(body: str) -> str:
    return NOT_PROSE.sub(" ", body)[:SAMPLE_CHARS]


def detect_language(body: str) -> str | None:
    """An ISO 639-1 code (py3langid's 97 languages), or None for a post with no prose to judge."""
    sample = prose_sample(body)
    if sum(ch.isalpha() for ch in sample) < 20:
        return None
    import py3langid  # loads its model (~0.7 s) on first use, only for blogs that need it

    return py3langid.classify(sample)[0]

"""The language of a post that neither a language folder nor a `lang` key names, detected from its text."""

from __future__ import annotations

import re

# Code, Liquid and markup say nothing about the language a post is written in, and an English-heavy code
# block would outvote a short Chinese paragraph. Inline pieces are bounded in length, so text full of
# unclosed `{%` or `<` costs linear time, not a scan to the end at each one.
NOT_PROSE = re.compile(
    r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`\n]{0,500}`|\{%[^\n]{0,500}?%\}|\{\{[^\n]{0,500}?\}\}|<[^>\n]{0,500}>|https?://\S+",
    re.DOTALL,
)
# Enough prose to decide; the detector's cost grows with the text.
SAMPLE_CHARS = 4000


def prose_sample(body: str) -> str:
    # Only the start of a long post is read: 8x the sample leaves room for the code and markup taken out.
    return NOT_PROSE.sub(" ", body[: SAMPLE_CHARS * 8])[:SAMPLE_CHARS]


def detect_language(body: str) -> str | None:
    """An ISO 639-1 code (py3langid's 97 languages), or None for a post with no prose to judge."""
    sample = prose_sample(body)
    if sum(ch.isalpha() for ch in sample) < 20:
        return None
    import py3langid  # loads its model (~0.7 s) on first use, only for blogs that need it

    return py3langid.classify(sample)[0]

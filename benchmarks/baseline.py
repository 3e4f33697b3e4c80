"""The reference project's dataset builder, as it was written, to compare blogtune with.

One file at a time: python-frontmatter, a handful of regexes stripping Liquid
({% %}, {{ }}), kramdown attribute lists and images, whitespace collapsed,
posts under 100 characters dropped, then title/body conversations as JSON
lines. Tokens are counted the way such a loop does it, one example at a time.
It has no raw-block or code handling and no accounting of what was dropped.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import frontmatter

LIQUID_TAG = re.compile(r"\{%.*?%\}", re.DOTALL)
LIQUID_OUTPUT = re.compile(r"\{\{.*?\}\}", re.DOTALL)
KRAMDOWN_IAL = re.compile(r"\{:[^}]*\}")
IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
BLANK_RUNS = re.compile(r"\n{3,}")
MIN_CHARS = 100


def clean(body: str) -> str:
    for pattern in (LIQUID_TAG, LIQUID_OUTPUT, KRAMDOWN_IAL, IMAGE):
        body = pattern.sub("", body)
    return BLANK_RUNS.sub("\n\n", body).strip()


def build_dataset(site_dir: Path, out_path: Path, tokenizer=None) -> dict:
    """Seconds per stage and what was written; tokens only when a tokenizer is given."""
    started = time.perf_counter()
    examples = []
    for path in sorted((site_dir / "_posts").rglob("*.md")):
        post = frontmatter.load(path)
        body = clean(post.content)
        if len(body) < MIN_CHARS:
            continue
        title = post.get("title", path.stem)
        examples.append({"conversations": [{"role": "user", "content": title}, {"role": "assistant", "content": body}]})
    with out_path.open("w", encoding="utf-8") as f:
        for example in examples:
            f.write(json.dumps(example, ensure_ascii=False) + "\n")
    text_done = time.perf_counter()
    tokens = 0
    if tokenizer is not None:
        for example in examples:
            tokens += len(tokenizer.apply_chat_template(example["conversations"], tokenize=True, return_dict=False))
    return {
        "examples": len(examples),
        "tokens": tokens,
        "text_s": text_done - started,
        "tokens_s": time.perf_counter() - text_done,
    }

"""Resolve a profile's base model (and tokenizer) to something local."""

from __future__ import annotations

import hashlib
from pathlib import Path

from transformers import AutoTokenizer

from blogtune_assets.core.cleaning import site_texts
from blogtune_assets.core.tiny_tokenizer import build_tokenizer
from blogtune_assets.profiles import SAMPLE_BLOG, Profile

TOKENIZER_VERSION = "1"


def load_tokenizer(profile: Profile, cache_dir: Path):
    if profile.embedded:
        texts = site_texts(SAMPLE_BLOG)
        # Keyed by code version and training text, so an edited sample blog retrains it.
        key = hashlib.sha256("\0".join([TOKENIZER_VERSION, *texts]).encode()).hexdigest()[:12]
        folder = cache_dir / f"tiny-tokenizer-{key}"
        if not (folder / "tokenizer.json").exists():
            tmp = folder.with_name(folder.name + ".tmp")
            build_tokenizer(texts, tmp)
            tmp.replace(folder)
        return AutoTokenizer.from_pretrained(folder)
    return AutoTokenizer.from_pretrained(profile.base_model_id)

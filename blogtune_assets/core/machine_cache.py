"""BLOGTUNE_CACHE: what is built once per machine (embedded bases, tokenizers) and reused by key."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from blogtune_assets.core.environment import read


def cache_root() -> Path:
    return read("BLOGTUNE_CACHE")


def staging_beside(cached: Path) -> Path:
    """A private folder to build into; published whole by publish(), so no reader sees half of it."""
    cached.parent.mkdir(parents=True, exist_ok=True)
    return cached.parent / f".tmp-{uuid.uuid4().hex[:12]}"


def publish(staging: Path, cached: Path) -> None:
    try:
        os.replace(staging, cached)
    except OSError:  # another process cached the same build first
        shutil.rmtree(staging, ignore_errors=True)

"""BLOGTUNE_CACHE: what is built once per machine (embedded bases, tokenizers) and reused by key."""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Callable
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


def build_once(cached: Path, marker: str, build: Callable[[Path], None]) -> bool:
    """Make `cached` by build(staging) unless it already holds `marker`; True if this call built it.

    One process at a time builds a key (a lock file beside it, released by the kernel even on SIGKILL): a
    second one that wants the same build, a parallel test worker or another run's base_model step, waits
    and then finds it, instead of spending the same minute of CPU again."""
    if (cached / marker).is_file():
        return False
    cached.parent.mkdir(parents=True, exist_ok=True)
    with open(cached.parent / f".{cached.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (cached / marker).is_file():
            return False
        staging = staging_beside(cached)
        staging.mkdir()
        try:
            build(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        publish(staging, cached)
    return True

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


def build_once(cached: Path, marker: str, build: Callable[[Path], None]) -> bool:
    """Make `cached` by build(staging) unless it already holds `marker`; True if this call built it.

    One process at a time builds a key (a lock file beside it, released by the kernel even on SIGKILL): a
    second one that wants the same build, a parallel test worker or another run's base_model step, waits
    and then finds it, instead of spending the same minute of CPU again. A build is made in a private
    folder and renamed into place whole, so no reader sees half of one; what a killed builder left, the
    next builder of that key removes."""
    if (cached / marker).is_file():
        return False
    cached.parent.mkdir(parents=True, exist_ok=True)
    with open(cached.parent / f".{cached.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (cached / marker).is_file():
            return False
        for leftover in [*cached.parent.glob(f".tmp-{cached.name}-*"), *([cached] if cached.exists() else [])]:
            shutil.rmtree(leftover, ignore_errors=True)  # a killed build's folder, or a key without its marker
        staging = cached.parent / f".tmp-{cached.name}-{uuid.uuid4().hex[:12]}"
        staging.mkdir()
        try:
            build(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        os.replace(staging, cached)
    return True

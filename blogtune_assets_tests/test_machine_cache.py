"""BLOGTUNE_CACHE builds: once per machine, however many processes want one at the same time."""

import threading
import time
from pathlib import Path

import pytest

from blogtune_assets.core.machine_cache import build_once


def test_two_builders_of_one_key_build_it_once(tmp_path: Path):
    # Parallel test workers, or two runs' base_model steps, each finding the tiny base missing.
    cached, builds, results = tmp_path / "tiny_base" / "key", [], []

    def build(staging: Path) -> None:
        builds.append(staging)
        time.sleep(0.5)  # long enough for the other builder to arrive while this one holds the lock
        (staging / "stats.json").write_text("{}")

    workers = [threading.Thread(target=lambda: results.append(build_once(cached, "stats.json", build))) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(builds) == 1 and sorted(results) == [False, True]
    assert (cached / "stats.json").is_file()
    assert [p.name for p in cached.parent.iterdir() if p.name.startswith(".tmp-")] == []


def test_a_failed_build_leaves_nothing_and_the_next_call_builds(tmp_path: Path):
    cached = tmp_path / "qwen3_tokenizer" / "key"

    def broken(staging: Path) -> None:
        (staging / "half.json").write_text("{")
        raise RuntimeError("the sdist is missing")

    with pytest.raises(RuntimeError, match="sdist"):
        build_once(cached, "tokenizer.json", broken)
    assert not cached.exists() and [p.name for p in cached.parent.iterdir() if not p.name.endswith(".lock")] == []
    assert build_once(cached, "tokenizer.json", lambda staging: (staging / "tokenizer.json").write_text("{}"))


def test_what_a_killed_build_left_is_removed_and_the_key_is_built(tmp_path: Path):
    # SIGKILL skips cleanup: a half-built staging folder, and a key folder that never got its marker.
    cached = tmp_path / "qwen3_shape_base" / "key"
    (tmp_path / "qwen3_shape_base" / ".tmp-key-0123456789ab").mkdir(parents=True)
    (cached / "model").mkdir(parents=True)
    assert build_once(cached, "stats.json", lambda staging: (staging / "stats.json").write_text("{}"))
    assert sorted(p.name for p in cached.parent.iterdir()) == [".key.lock", "key"] and (cached / "stats.json").is_file()

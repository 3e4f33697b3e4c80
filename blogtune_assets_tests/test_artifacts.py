import shutil
import signal
import subprocess
import sys
import time

import pytest
from gguf import GGUFReader
from transformers import AutoModelForCausalLM

from blogtune_assets.core.artifacts import ArtifactNotFound, ArtifactStore
from blogtune_assets.core.gguf_export import convert_to_gguf


def test_a_finished_version_becomes_current(tmp_path):
    store = ArtifactStore(tmp_path)
    with store.new_version("thing") as folder:
        (folder / "data.txt").write_text("v1")
    assert (store.current("thing") / "data.txt").read_text() == "v1"


def test_a_failed_write_leaves_nothing_a_reader_would_follow(tmp_path):
    store = ArtifactStore(tmp_path)
    with store.new_version("thing") as folder:
        (folder / "data.txt").write_text("v1")
    good = store.current("thing")
    with pytest.raises(RuntimeError):
        with store.new_version("thing") as folder:
            (folder / "data.txt").write_text("half")
            raise RuntimeError("crash mid-write")
    assert store.current("thing") == good
    assert store.versions("thing") == [good]
    assert not [p for p in (tmp_path / "thing").iterdir() if p.name.startswith(".tmp")]


def test_old_versions_are_pruned(tmp_path):
    store = ArtifactStore(tmp_path, keep_versions=2)
    for i in range(4):
        with store.new_version("thing") as folder:
            (folder / "i").write_text(str(i))
    versions = store.versions("thing")
    assert [(v / "i").read_text() for v in versions] == ["2", "3"]
    assert store.current("thing") == versions[-1]


def test_missing_artifact_says_what_to_do(tmp_path):
    with pytest.raises(ArtifactNotFound, match="materialize it first"):
        ArtifactStore(tmp_path).current("nothing")


def test_current_or_none_is_none_only_before_the_first_publish(tmp_path):
    store = ArtifactStore(tmp_path)
    assert store.current_or_none("lora_adapter") is None
    with store.new_version("lora_adapter") as folder:
        (folder / "adapter_config.json").write_text("{}")
    assert store.current_or_none("lora_adapter") == store.current("lora_adapter")


WRITER = """
import sys, time
from pathlib import Path
from transformers import AutoModelForCausalLM
from blogtune_assets.core.artifacts import ArtifactStore
from blogtune_assets.core.gguf_export import convert_to_gguf

home, asset, model_dir = sys.argv[1:4]
with ArtifactStore(home).new_version(asset) as folder:
    if asset == "merged_model":
        AutoModelForCausalLM.from_pretrained(model_dir).save_pretrained(folder)
    else:
        convert_to_gguf(Path(model_dir), folder / "model-bf16.gguf", "blogtune")
    (Path(home) / "written").touch()
    time.sleep(600)  # killed here, after the files are written and before the publish
"""


@pytest.mark.parametrize("asset", ["merged_model", "gguf_q4km"])
def test_a_writer_killed_mid_publish_leaves_the_previous_version_loadable(asset, tiny_base_dir, tmp_path):
    store = ArtifactStore(tmp_path)
    with store.new_version(asset) as folder:
        if asset == "merged_model":
            shutil.copytree(tiny_base_dir, folder, dirs_exist_ok=True)
        else:
            convert_to_gguf(tiny_base_dir, folder / "model-bf16.gguf", "blogtune")
    previous = store.current(asset)

    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), asset, str(tiny_base_dir)])
    deadline = time.monotonic() + 300
    while not (tmp_path / "written").exists():
        assert writer.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    writer.send_signal(signal.SIGKILL)
    writer.wait()

    assert store.current(asset) == previous and store.versions(asset) == [previous]
    if asset == "merged_model":
        AutoModelForCausalLM.from_pretrained(previous)
    else:
        assert GGUFReader(previous / "model-bf16.gguf").tensors
    orphans = list((tmp_path / asset).glob(".tmp-*"))
    assert len(orphans) == 1  # the killed writer's, never followed by a reader
    with store.new_version(asset) as folder:
        (folder / "next").write_text("next")
    assert not list((tmp_path / asset).glob(".tmp-*"))  # cleaned up by the next publish


def test_a_live_writers_folder_is_not_taken_for_an_orphan(tmp_path):
    store = ArtifactStore(tmp_path)
    with store.new_version("thing") as outer:
        with store.new_version("thing") as inner:
            (inner / "x").write_text("x")
        assert outer.exists()

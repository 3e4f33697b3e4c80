"""Running out of disk or GPU memory fails early, with what to change."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import torch

from blogtune_assets.assets.gguf_q4km import gguf_q4km
from blogtune_assets.assets.model import merged_model
from blogtune_assets.core import disk, train
from blogtune_assets.core.artifacts import ArtifactStore
from blogtune_assets.core.device import Device
from blogtune_assets.core.profiles import get_profile
from blogtune_assets.resources import Accelerator, ArtifactHome, ModelProfile


def test_too_little_free_space_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(disk, "free_bytes", lambda path: 300 * 2**20)
    with pytest.raises(disk.NotEnoughDiskSpace) as err:
        disk.ensure_free_space(tmp_path / "not-yet-created", 3 * 2**30, "merged_model")
    message = str(err.value)
    assert "merged_model" in message and "3.00 GiB" in message and "300.0 MiB is free" in message and "BLOGTUNE_HOME" in message
    disk.ensure_free_space(tmp_path, 100 * 2**20, "merged_model")


def test_free_bytes_looks_at_the_folder_that_will_hold_the_artifact(tmp_path):
    assert disk.free_bytes(tmp_path / "home" / "gguf_q4km") == disk.free_bytes(tmp_path) > 0


def test_lora_estimate_matches_qwen3_4b_adapter(tmp_path):
    # Qwen3-4B with r=32 on all seven projections has 66.06M LoRA parameters (GQA k/v included).
    config = {"hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert disk.lora_adapter_bytes(tmp_path, 32) == pytest.approx(4 * 66.06e6, rel=0.01)
    assert disk.lora_training_bytes(tmp_path, 32) > disk.ADAPTER_COPIES * 4 * 66e6


@pytest.fixture
def full_disk(monkeypatch):
    monkeypatch.setattr(disk, "free_bytes", lambda path: 0)


def _published_versions(home: Path, asset: str) -> list[Path]:
    return ArtifactStore(home).versions(asset)


def test_merged_model_and_gguf_fail_before_writing_on_a_full_disk(full_disk, home, tiny_base_dir, sample_dataset):
    artifacts, profile = ArtifactHome(home=str(home)), ModelProfile(profile="tiny")
    base = ArtifactStore(home).current("base_model")
    with pytest.raises(disk.NotEnoughDiskSpace, match="merged_model"):
        merged_model(
            context=dg.build_asset_context(), lora_adapter=tiny_base_dir, base_model=base, sft_dataset=sample_dataset,
            model_profile=profile, accelerator=Accelerator(device="cpu"), artifacts=artifacts,
        )  # fmt: skip
    with pytest.raises(disk.NotEnoughDiskSpace, match="gguf_q4km"):
        gguf_q4km(
            context=dg.build_asset_context(), merged_model=tiny_base_dir, base_model=base, sft_dataset=sample_dataset,
            model_profile=profile, artifacts=artifacts,
        )  # fmt: skip
    assert not _published_versions(home, "merged_model") and not _published_versions(home, "gguf_q4km")
    assert not (home / "merged_model").exists() and not (home / "gguf_q4km").exists()


def test_cuda_out_of_memory_says_what_to_change(monkeypatch, tmp_path, tiny_base_dir, sample_dataset):
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 23.6 GiB total capacity)")

    monkeypatch.setattr(train, "load_train_model", out_of_memory)
    settings = get_profile("qwen3-4b").train
    with pytest.raises(RuntimeError) as err:
        train.train_lora(
            tiny_base_dir, sample_dataset, tmp_path / "ckpt", tmp_path / "out", settings, Device("cuda"), emit=lambda line: None
        )
    message = str(err.value)
    assert not isinstance(err.value, torch.OutOfMemoryError)
    assert "Tried to allocate 2.00 GiB" in message
    assert f"per_device_train_batch_size {settings.per_device_train_batch_size} → {settings.per_device_train_batch_size // 2}" in message
    assert f"max_length {settings.max_length} → {settings.max_length // 2}" in message
    assert "lora_adapter" in message and "TrainConfig" in message

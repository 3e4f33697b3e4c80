"""The profile mapping, checked without downloading anything."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from blogtune_assets.core.base_model import BaseModelUnavailable, resolve_base
from blogtune_assets.core.device import Device, resolve_device
from blogtune_assets.core.train import lora_config, sft_config
from blogtune_assets.core.profiles import LORA_TARGETS, get_profile


def test_qwen3_4b_profile_is_the_reference_run(tmp_path):
    profile = get_profile("qwen3-4b")
    assert profile.base_model_id == "unsloth/Qwen3-4B-unsloth-bnb-4bit"
    assert profile.merge_base_model_id == "unsloth/Qwen3-4B"
    assert profile.merge_dtype is None  # merged as unsloth/Qwen3-4B is stored: bf16
    s = profile.train
    lora = lora_config(s)
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (32, 32, 0.0)
    assert set(lora.target_modules) == set(LORA_TARGETS) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
    }
    args = sft_config(s, tmp_path, Device("cpu"))
    assert args.per_device_train_batch_size == 2
    assert args.gradient_accumulation_steps == 8
    assert args.num_train_epochs == 2
    assert args.learning_rate == 2e-4
    assert str(args.lr_scheduler_type.value if hasattr(args.lr_scheduler_type, "value") else args.lr_scheduler_type) == "cosine"
    assert args.warmup_steps == 0.03
    # Cut to 4,096 when encoded (load_sft_split): trl enforces no max_length on padding-free batches.
    assert s.max_length == 4096 and args.max_length is None
    assert args.padding_free and args.packing is False  # 2 examples a micro-batch, flattened: no padding
    assert args.seed == 42
    # The loss mask comes with the data (core/chat_tokens); trl's template masking would refuse hub templates.
    assert args.assistant_only_loss is False
    assert args.gradient_checkpointing and args.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert args.ddp_find_unused_parameters is False


def test_data_parallel_keeps_the_recipes_sixteen_sequences_a_step(tmp_path):
    """One process per GPU used to multiply the batch (2 x 8 x N) and divide the steps by N at the same rate."""
    s = get_profile("qwen3-4b").train
    assert s.effective_batch == 16
    for processes in (1, 2, 4, 8):
        args = sft_config(s, tmp_path, Device("cpu", num_processes=processes))
        assert args.per_device_train_batch_size * args.gradient_accumulation_steps * processes == 16
    with pytest.raises(ValueError, match=r"does not split across 3 .* one of \[1, 2, 4, 8\]"):
        sft_config(s, tmp_path, Device("cpu", num_processes=3))


def test_cuda_gets_qlora_and_bf16_cpu_does_not():
    assert Device("cuda", "bfloat16").qlora and not Device("cpu").qlora
    assert not Device("cpu").bf16


def test_accelerator_resolves_auto_to_what_this_machine_has():
    device = resolve_device()  # no GPU here
    assert device == Device("cpu", "float32", 1)
    assert resolve_device("cpu", "bfloat16", 2) == Device("cpu", "bfloat16", 2)
    assert device.describe()["torch_version"] == torch.__version__
    with pytest.raises(RuntimeError, match="torch sees no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="float16 training needs CUDA"):
        resolve_device("cpu", "float16")
    with pytest.raises(ValueError, match="dtype must be auto or one of"):
        resolve_device("cpu", "fp8")


H200_PAIR = {"cuda_devices": 2, "bf16": True, "gpu": "NVIDIA H200", "torch": "2.11.0"}


def test_auto_on_a_gpu_machine_is_bf16_and_one_process_per_gpu():
    assert resolve_device(seen=H200_PAIR) == Device("cuda", "bfloat16", 2)
    assert resolve_device(seen={**H200_PAIR, "bf16": False}).dtype == "float16"  # a T4, say
    assert resolve_device(seen=H200_PAIR).describe()["gpu"] == "NVIDIA H200"
    with pytest.raises(ValueError, match="3 processes asked for, but torch sees 2 GPUs"):
        resolve_device(num_processes=3, seen=H200_PAIR)


def test_resolving_the_device_starts_no_cuda_in_the_dagster_process():
    """is_bf16_supported() and get_device_name() initialised CUDA in lora_adapter's step: a context on GPU 0 held
    for the whole run. torch is asked in a child process; the step's own process never imports it."""
    code = (
        "import sys; from blogtune_assets.resources import Accelerator; "
        "device = Accelerator().resolve(); device.describe(); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("variable, value", [("BLOGTUNE_PROFILE", "qwen3_4b"), ("BLOGTUNE_DEVICE", "gpu"), ("BLOGTUNE_DTYPE", "bf16")])
def test_a_misspelt_setting_fails_when_the_definitions_load(variable, value, monkeypatch):
    """It used to pass `dagster definitions validate` and fail a run later, in its first heavy step."""
    from blogtune_assets.resources import from_env

    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=rf"{variable}='{value}' is not one of '"):
        from_env()


def test_dagster_definitions_validate_names_the_allowed_profiles():
    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "BLOGTUNE_PROFILE": "qwen3_4b"}
    done = subprocess.run([str(dagster), "definitions", "validate", "-m", "blogtune_assets.definitions"], capture_output=True, text=True, env=env)
    assert done.returncode != 0
    assert "BLOGTUNE_PROFILE='qwen3_4b' is not one of 'tiny', 'qwen3-shape', 'qwen3-4b'" in done.stdout + done.stderr


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown profile 'qwen9'"):
        get_profile("qwen9")


def test_hub_model_that_cannot_be_fetched_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(BaseModelUnavailable, match="cannot fetch base model 'unsloth/Qwen3-4B-unsloth-bnb-4bit'"):
        resolve_base(get_profile("qwen3-4b"), tmp_path / "out")


def test_a_local_base_without_a_fast_tokenizer_is_a_clear_error(tmp_path):
    # sft_dataset counts with tokenizer.json through `tokenizers` alone; a folder with only a slow tokenizer's files
    # is named, with the command that writes the fast one.
    from blogtune_assets.core.tokenizer_source import TokenizerUnavailable, counting_tokenizer

    (tmp_path / "vocab.json").write_text("{}")
    with pytest.raises(TokenizerUnavailable, match=r"no tokenizer.json.*vocab.json.*save_pretrained"):
        counting_tokenizer(get_profile("qwen3-4b"), base_override=str(tmp_path))


def test_every_recipe_setting_but_the_split_and_targets_can_be_overridden_per_run():
    import dataclasses

    from blogtune_assets.assets.model import TrainConfig
    from blogtune_assets.core.profiles import TrainSettings

    recipe = {f.name for f in dataclasses.fields(TrainSettings)} - {"target_modules", "eval_size"}
    assert set(TrainConfig.model_fields) == recipe | {"training_mode"}  # the one field that is not a recipe setting
    settings = TrainConfig(padding_free=False, learning_rate=1e-3).apply(get_profile("qwen3-4b").train)
    assert (settings.padding_free, settings.learning_rate, settings.max_length) == (False, 1e-3, 4096)


def test_the_checkpoint_key_follows_the_process_count_not_the_gpu_model(tmp_path):
    """A checkpoint's optimizer state and data order belong to its number of processes; a retry on another
    node (another GPU model, a newer torch) must still resume."""
    from blogtune_assets.assets.model import _run_key

    settings = get_profile("qwen3-4b").train
    key = _run_key(tmp_path / "v1", tmp_path / "v2", settings, Device("cuda", "bfloat16", 1, gpu="NVIDIA L4", torch_version="2.11.0"))
    assert key == _run_key(tmp_path / "v1", tmp_path / "v2", settings, Device("cuda", "bfloat16", 1, gpu="NVIDIA A10", torch_version="2.13.0"))
    assert key != _run_key(tmp_path / "v1", tmp_path / "v2", settings, Device("cuda", "bfloat16", 2))

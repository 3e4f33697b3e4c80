"""lora_adapter through Dagster Pipes and torchrun: two CPU processes training data-parallel (gloo)."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest
from peft import PeftModel
from transformers import AutoModelForCausalLM

from blogtune_assets.assets.model import base_model, lora_adapter
from blogtune_assets.core.artifacts import ArtifactStore
from blogtune_assets.resources import from_env

STEPS = 4


@pytest.mark.slow
def test_two_process_ddp_run_reports_once_through_pipes(home, sample_dataset, tiny_base_dir, monkeypatch):
    shutil.copytree(sample_dataset, home / "sft_dataset" / "v1")
    (home / "sft_dataset" / "current").symlink_to("v1")
    monkeypatch.setenv("BLOGTUNE_HOME", str(home))
    monkeypatch.setenv("BLOGTUNE_NUM_PROCESSES", "2")
    instance = dg.DagsterInstance.ephemeral()
    sft_dataset = dg.AssetSpec("sft_dataset")  # already published in the home: loaded, not run
    # 2 sequences x 2 micro-batches a step: each of the 2 processes takes one micro-batch of 2.
    recipe = {"gradient_accumulation_steps": 2, "max_steps": STEPS, "logging_steps": 1, "save_steps": 2, "max_length": 256}
    run_config = {"ops": {"lora_adapter": {"config": recipe}}}

    result = dg.materialize(
        [sft_dataset, base_model, lora_adapter],
        selection=[lora_adapter],
        resources=from_env(),
        run_config=run_config,
        instance=instance,
    )

    assert result.success
    meta = {k: v.value for k, v in result.asset_materializations_for_node("lora_adapter")[0].metadata.items()}
    assert meta["num_processes"] == 2 and meta["steps"] == STEPS
    assert meta["accelerator"]["num_processes"] == 2 and meta["accelerator"]["kind"] == "cpu"
    # The recipe's 4 sequences a step, not 4 per process: each process accumulates 1 micro-batch, not 2.
    # (Every sample post is longer than 256 tokens, so each sequence is 256 tokens, gathered over both.)
    assert meta["effective_batch"] == 4
    assert meta["train_tokens"] == STEPS * 4 * 256
    assert meta["eval_loss"] > 0 and meta["final_train_loss"] > 0
    assert meta["padding_share"] == 0.0 and meta["batching"].startswith("padding-free")
    assert meta["estimated_peak_memory_gb"] == meta["memory_estimate"]["total_gb"] > 0

    logs = [e.user_message for e in instance.all_logs(result.run_id) if e.user_message]
    for step in range(1, STEPS + 1):  # each logged step once: rank 1 trains but does not report
        assert sum(line.startswith(f"step {step}/{STEPS} · loss") for line in logs) == 1, logs

    adapter = ArtifactStore(home).current("lora_adapter")
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base_dir), adapter)
    lora_shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if "lora_" in n}
    hidden = model.config.hidden_size
    assert len(lora_shapes) == 2 * 7 * model.config.num_hidden_layers
    assert all(32 in shape for shape in lora_shapes.values())
    assert lora_shapes[next(n for n in lora_shapes if "q_proj.lora_A" in n)] == (32, hidden)

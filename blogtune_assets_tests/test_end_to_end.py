"""The whole graph materialized by Dagster on the sample blog, as `make demo` does."""

import dagster as dg
import pytest

from blogtune_assets.definitions import all_assets, all_checks
from blogtune_assets.resources import from_env


@pytest.mark.slow
def test_whole_graph_on_the_sample_blog(home, monkeypatch):
    monkeypatch.setenv("BLOGTUNE_HOME", str(home))
    result = dg.materialize([*all_assets, *all_checks], resources=from_env())
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks and all(checks.values()), checks
    meta = {
        e.asset_key.path[-1]: {k: v.value for k, v in e.step_materialization_data.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }
    assert meta["base_model"]["reused_existing_build"] is True  # the build key matched: no second pretraining
    assert meta["base_model"]["parameters"] > 1_000_000 and meta["base_model"]["architecture"] == "Qwen3ForCausalLM"
    lora = meta["lora_adapter"]
    assert lora["eval_loss"] < lora["base_eval_loss"]
    assert lora["train_split_loss"] < lora["base_train_split_loss"]  # the train loss falls
    assert "data:image/png;base64" in lora["loss_curve"]
    assert list((home / "lora_adapter" / "current" / "tensorboard").rglob("events.out.tfevents*"))
    merged = meta["merged_model"]
    assert merged["max_abs_logit_diff"] <= merged["logit_tolerance"]
    assert merged["size_bytes"] > 0
    export = meta["gguf_q4km"]
    assert export["quant_type"] == "Q4_K_M" and export["file_type"] == 15
    assert export["tensors_q4_k"] > 0 and export["tensors_q6_k"] > 0
    assert export["q4_k_m_perplexity"] <= export["intermediate_perplexity"] * 1.15
    assert "ollama create" in export["ollama_create"] and "generated body" in export["sample_generations"]
    assert merged["stop_probability_finetuned"] > merged["stop_probability_base"]
    assert (home / "gguf_q4km" / "current" / "Modelfile").exists()

"""`make demo`, as a new user runs it: the whole graph through the `dagster` CLI on the sample blog.

CI runs it here rather than as a separate `make demo`: one run of the tiny graph, with assertions.
"""

import pytest

from blogtune_assets_tests.dagster_cli import checks, materialize, metadata, summary


@pytest.mark.slow
def test_make_demo_materializes_the_whole_graph_on_the_sample_blog(tmp_path):
    instance = materialize(tmp_path, "tiny", "*")
    passed = checks(instance)
    assert len(passed) == 6 and all(passed.values()), passed
    meta = {a: metadata(instance, a) for a in ("base_model", "lora_adapter", "merged_model", "gguf_q4km")}
    assert meta["base_model"]["parameters"] > 1_000_000 and meta["base_model"]["architecture"] == "Qwen3ForCausalLM"
    lora = meta["lora_adapter"]
    assert lora["eval_loss"] < lora["base_eval_loss"]
    assert lora["train_split_loss"] < lora["base_train_split_loss"]  # the train loss falls
    assert "data:image/png;base64" in lora["loss_curve"]
    home = tmp_path / "home"
    assert list((home / "lora_adapter" / "current" / "tensorboard").rglob("events.out.tfevents*"))
    merged = meta["merged_model"]
    assert merged["max_abs_logit_diff"] <= merged["logit_tolerance"]
    assert merged["stop_probability_finetuned"] > merged["stop_probability_base"]
    export = meta["gguf_q4km"]
    assert export["quant_type"] == "Q4_K_M" and export["file_type"] == 15
    assert export["tensors_q4_k"] > 0 and export["tensors_q6_k"] > 0
    assert export["q4_k_m_perplexity"] <= export["intermediate_perplexity"] * 1.15
    assert "ollama create" in export["ollama_create"] and "generated body" in export["sample_generations"]
    printed = summary(tmp_path, "tiny")
    q4 = (home / "gguf_q4km" / "current").resolve() / "model-Q4_K_M.gguf"  # the published version's own folder
    assert f"Your model: {q4}" in printed and "ollama create blogtune" in printed

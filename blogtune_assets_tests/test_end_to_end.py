"""`make demo`, as a new user runs it: the whole graph through the `dagster` CLI on the sample blog.

CI runs it here rather than as a separate `make demo`: one run of the tiny graph (the `demo_run`
fixture, which the UI test serves too), with assertions.
"""

import dagster as dg
import pytest

from blogtune_assets_tests.dagster_cli import checks, metadata, summary


@pytest.mark.slow
def test_make_demo_materializes_the_whole_graph_on_the_sample_blog(demo_run):
    instance = dg.DagsterInstance.from_config(str(demo_run / "dagster_home"))
    passed = checks(instance)
    assert len(passed) == 6 and all(passed.values()), passed
    meta = {a: metadata(instance, a) for a in ("base_model", "lora_adapter", "merged_model", "gguf_q4km")}
    assert meta["base_model"]["parameters"] > 1_000_000 and meta["base_model"]["architecture"] == "Qwen3ForCausalLM"
    lora = meta["lora_adapter"]
    assert lora["eval_loss"] < lora["base_eval_loss"]
    assert lora["train_split_loss"] < lora["base_train_split_loss"]  # the train loss falls
    assert "data:image/png;base64" in lora["loss_curve"]
    home = demo_run / "home"
    assert list((home / "lora_adapter" / "current" / "tensorboard").rglob("events.out.tfevents*"))
    merged = meta["merged_model"]
    assert merged["max_abs_logit_diff"] <= merged["logit_tolerance"]
    assert merged["stop_probability_finetuned"] > merged["stop_probability_base"]
    export = meta["gguf_q4km"]
    assert export["quant_type"] == "Q4_K_M" and export["file_type"] == 15
    assert export["tensors_q4_k"] > 0 and export["tensors_q6_k"] > 0
    assert export["q4_k_m_perplexity"] <= export["intermediate_perplexity"] * 1.15
    assert "ollama create" in export["ollama_create"] and "generated body" in export["sample_generations"]
    # The run log reads as a log: blogtune's progress lines, no third-party progress bars.
    log = (demo_run / "dagster_cli.log").read_text()
    # The tiny recipe: 40 train posts, 2 a step, 12 epochs.
    assert "step 240/240 · loss" in log and "%|" not in log and "it/s]" not in log

    # The demo's last screen: what was built and proven, with the figures the UI shows.
    printed = summary(demo_run, "tiny")
    raw, cleaned, data = (metadata(instance, a) for a in ("raw_posts", "cleaned_posts", "sft_dataset"))
    q4 = home / "gguf_q4km" / "current" / "model-Q4_K_M.gguf"  # through the link that follows new versions
    expected = [
        "3,410,688-parameter stand-in",
        "not meant to be read",
        f"{raw['files_under_posts']} files under _posts/: {raw['posts_read']} read, {raw['files_rejected']} rejected, "
        f"{raw['files_not_posts']} not posts; "
        f"{cleaned['posts_kept']} kept, {cleaned['posts_dropped']} dropped",
        f"{data['train_examples']} train / {data['eval_examples']} eval examples, {data['train_tokens']:,} / {data['eval_tokens']:,} tokens",
        f"eval loss {lora['base_eval_loss']:.3f} (base) -> {lora['eval_loss']:.3f} (fine-tuned)",
        f"model-Q4_K_M.gguf: {export['size_bytes'] / 1e6:.1f} MB",
        "6/6 passed",
        f"ollama create blogtune -f {q4.parent / 'Modelfile'}",
        f"llama-cli -m {q4} --jinja -cnv",
        "A sample, drawn as the Modelfile samples (",
        "BLOGTUNE_PROFILE=qwen3-4b",
        "10 h 52 min on one RTX 4070",
    ]
    assert [line for line in expected if line not in printed] == [], printed

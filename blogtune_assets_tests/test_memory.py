"""The peak-memory estimate lora_adapter records before training: its counts checked against the real model and
peft, its figures for the reference recipe pinned."""

import pytest
from peft import LoraConfig, get_peft_model
from transformers import Qwen3Config, Qwen3ForCausalLM

from benchmarks.gpu_check import QWEN3_4B
from blogtune_assets.core.memory import estimate_peak_memory, lora_parameters, parameter_counts
from blogtune_assets.core.profiles import LORA_TARGETS

# Qwen3-4B's proportions (head dim, 4 query heads per KV head, tied) at a size a CPU builds in a blink.
SMALL = {**QWEN3_4B, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 32, "intermediate_size": 96, "vocab_size": 500}


def test_parameter_and_lora_counts_are_the_models_own():
    model = Qwen3ForCausalLM(Qwen3Config(**SMALL))
    linear, other = parameter_counts(SMALL)
    assert linear + other == model.num_parameters()
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=8, target_modules=list(LORA_TARGETS)))
    assert lora_parameters(SMALL, 8, LORA_TARGETS) == sum(p.numel() for p in peft_model.parameters() if p.requires_grad)


def test_the_reference_recipe_fits_12_gb_even_at_two_full_length_examples():
    """QLoRA bf16, r=32 on all seven projections, a micro-batch of 2 x 4,096 tokens. trl's chunked output head is
    what makes it fit: the full bf16 logits alone would be 2.5 GB, and with the loss's fp32 copies 12.5 GB."""
    worst = estimate_peak_memory(QWEN3_4B, lora_r=32, target_modules=LORA_TARGETS, tokens=2 * 4096, dtype="bfloat16", qlora=True)
    assert worst.as_dict() == {"weights_gb": 3.43, "lora_and_optimizer_gb": 0.53, "activations_gb": 4.51, "output_head_gb": 0.52, "total_gb": 8.99}
    # QLoRA's activations are fp32 (the fp32 embedding starts the residual stream): half of them in bf16.
    as_if_bf16 = estimate_peak_memory(QWEN3_4B, lora_r=32, target_modules=LORA_TARGETS, tokens=2 * 4096, dtype="bfloat16", qlora=False)
    assert as_if_bf16.activations_gb == pytest.approx(worst.activations_gb / 2, rel=1e-9)
    # The fp32 copy of the 151,936 x 2,560 tied embedding that prepare_model_for_kbit_training makes is 1.56 GB of it.
    assert 151_936 * 2560 * 4 / 1e9 == pytest.approx(1.556, abs=1e-3)
    # Two examples of the reference run's mean length (1,169 tokens), padding-free: what most steps need.
    typical = estimate_peak_memory(QWEN3_4B, lora_r=32, target_modules=LORA_TARGETS, tokens=2 * 1169, dtype="bfloat16", qlora=True)
    assert typical.total_gb == pytest.approx(5.59, abs=0.01)

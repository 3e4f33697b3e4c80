"""Prepared for a CUDA machine (not run here): LoRA throughput of a Qwen3-4B-shaped model.

A random-init model with Qwen3-4B's shape (hidden 2560, 36 layers, 32/8 heads, head dim 128,
FFN 9728, vocab 151,936, tied) in bf16, LoRA r=32 / alpha 32 on all seven projections,
max length 4,096, batch 2, a few dozen steps per mode. Reports tokens/s, MFU and peak
memory as JSON in $OUT (or --out).

MFU counts LoRA on a frozen base as 4·N FLOPs per token (forward 2N, backward through the
activations 2N, no weight gradients for the base); attention's FLOPs and gradient
checkpointing's recomputation are not counted as useful work.

Modes: `padded` (two examples padded to the longer) and `padding_free` (the same tokens
packed into one row with position_ids restarting per example, which transformers turns
into flash-attention varlen calls when flash_attention_2 is installed).

    python -m benchmarks.gpu_training --steps 30 --out "$OUT/gpu_training.json"
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import torch

from blogtune_assets.profiles import LORA_TARGETS

QWEN3_4B = {
    "hidden_size": 2560,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "intermediate_size": 9728,
    "vocab_size": 151_936,
    "max_position_embeddings": 40_960,
}
# Dense bf16 peak, by device name; --peak-tflops for anything else.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "4090": 165.0}
# The reference run's lengths: log-normal with mean ~1,169 tokens (results/training_efficiency.json).
LENGTH_MU, LENGTH_SIGMA = 6.75, 0.75


def attention_implementation() -> str:
    try:
        import flash_attn  # noqa: F401

        return "flash_attention_2"
    except ImportError:
        return "sdpa"


def build_model(attn: str, gradient_checkpointing: bool):
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(**QWEN3_4B, tie_word_embeddings=True, rope_theta=1_000_000.0, attn_implementation=attn)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = Qwen3ForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    base_params = sum(p.numel() for p in model.parameters())
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(r=32, lora_alpha=32, lora_dropout=0.0, target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM")
    return get_peft_model(model, lora), base_params


def batches(rng: random.Random, mode: str, max_length: int, vocab: int):
    """Endless batches of two examples with the reference length distribution."""
    while True:
        lengths = [min(max_length, max(16, round(rng.lognormvariate(LENGTH_MU, LENGTH_SIGMA)))) for _ in range(2)]
        seqs = [torch.randint(0, vocab, (n,)) for n in lengths]
        if mode == "padding_free":
            ids = torch.cat(seqs)[None]
            positions = torch.cat([torch.arange(n) for n in lengths])[None]
            yield {"input_ids": ids, "position_ids": positions, "labels": ids.clone()}, sum(lengths)
        else:
            longest = max(lengths)
            ids = torch.zeros(2, longest, dtype=torch.long)
            mask = torch.zeros(2, longest, dtype=torch.long)
            for row, seq in enumerate(seqs):
                ids[row, : len(seq)], mask[row, : len(seq)] = seq, 1
            labels = ids.masked_fill(mask == 0, -100)
            yield {"input_ids": ids, "attention_mask": mask, "labels": labels}, sum(lengths)


def run_mode(model, mode: str, steps: int, warmup: int, max_length: int, base_params: int, peak_tflops: float) -> dict:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    feed = batches(random.Random(42), mode, max_length, QWEN3_4B["vocab_size"])
    torch.cuda.reset_peak_memory_stats()
    tokens, started = 0, None
    for step in range(warmup + steps):
        if step == warmup:
            torch.cuda.synchronize()
            started, tokens = time.perf_counter(), 0
        batch, real = next(feed)
        loss = model(**{k: v.cuda() for k, v in batch.items()}).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += real
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    per_s = tokens / seconds
    return {
        "mode": mode,
        "steps": steps,
        "real_tokens": tokens,
        "seconds": seconds,
        "real_tokens_per_s": per_s,
        "mfu": 4 * base_params * per_s / (peak_tflops * 1e12),
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 1e9,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=4096)
    parser.add_argument("--modes", nargs="+", default=["padded", "padding_free"])
    parser.add_argument("--no-gradient-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the GPU, if not recognised")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "gpu_training.json")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("gpu_training needs a CUDA device")
    name = torch.cuda.get_device_name()
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    if peak is None:
        raise SystemExit(f"unknown GPU {name!r}: pass --peak-tflops")
    attn = attention_implementation()
    model, base_params = build_model(attn, not args.no_gradient_checkpointing)
    runs = []
    for mode in args.modes:
        if mode == "padding_free" and attn != "flash_attention_2":
            runs.append({"mode": mode, "skipped": "flash-attn not installed: sdpa would let packed examples attend to each other"})
            continue
        runs.append(run_mode(model, mode, args.steps, args.warmup, args.max_length, base_params, peak))
        print(json.dumps(runs[-1]))
    result = {
        "gpu": name,
        "peak_bf16_tflops": peak,
        "attention": attn,
        "gradient_checkpointing": not args.no_gradient_checkpointing,
        "base_parameters": base_params,
        "lora_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "max_length": args.max_length,
        "torch": torch.__version__,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", args.out)
    return result


if __name__ == "__main__":
    main()

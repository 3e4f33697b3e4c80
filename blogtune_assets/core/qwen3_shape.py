"""The `qwen3-shape` base: Qwen3-4B's vocabulary and attention geometry at a CPU's size.

What the tiny model cannot show: the real tokenizer and special ids end to end, a 151,936-row tied
embedding (not a multiple of anything convenient; 267 rows past the tokenizer) quantized as the output,
head dim 128 with 4 query heads per KV head, q/k norms, rope theta 1e6. Width and depth are shrunk and
the weights stay random (seeded): full-vocabulary pretraining costs ~5 s a step on 2 cores, and what
this base proves is the plumbing, not language.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import AutoTokenizer, Qwen3ForCausalLM

from blogtune_assets.core.qwen3_tokenizer import QWEN3_TOKENIZER_VERSION, llama_cpp_sdist, qwen3_tokenizer_dir
from blogtune_assets.core.tiny_model import TinyShape, qwen3_config

QWEN3_SHAPE_VERSION = "1"
# Qwen3-4B: hidden 2560, 36 layers, 32 heads / 8 KV heads of 128, FFN 9728. Kept: head dim, the 4:1
# grouping, rows that are multiples of 256 (so Q4_K_M's K-quants apply as they do at 4B).
SHAPE = TinyShape(
    hidden_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=1,
    head_dim=128,
    intermediate_size=512,
    max_position_embeddings=40960,
)
VOCAB_ROWS = 151936  # Qwen3-4B's config.json vocab_size
BOS_TOKEN_ID = 151643  # Qwen3-4B's config.json; its tokenizer has no bos token
SEED = 42


def build_key() -> str:
    # The tokenizer's version and source are part of what is built: its vocabulary sizes the embedding.
    blob = json.dumps([QWEN3_SHAPE_VERSION, QWEN3_TOKENIZER_VERSION, llama_cpp_sdist().name, asdict(SHAPE), VOCAB_ROWS, SEED])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_qwen3_shape_model(out_dir: Path, log=print) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir(log), trust_remote_code=False)
    torch.manual_seed(SEED)
    model = Qwen3ForCausalLM(qwen3_config(SHAPE, tokenizer, vocab_size=VOCAB_ROWS, bos_token_id=BOS_TOKEN_ID))
    # Qwen3's generation_config.json stops on both end tokens.
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.pad_token_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    log(f"qwen3-shape base: {sum(p.numel() for p in model.parameters()):,} random parameters, vocabulary {VOCAB_ROWS:,} rows")
    return {"pretrain_steps": 0, "weights": f"random (seed {SEED})"}

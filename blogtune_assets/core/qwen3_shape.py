"""The `qwen3-shape` base: Qwen3-4B's vocabulary and attention geometry at a CPU's size.

What the tiny model cannot show: the real tokenizer and special ids end to end, a 151,936-row tied
embedding (not a multiple of anything convenient; 267 rows past the tokenizer) quantized as the output,
head dim 128 with 4 query heads per KV head, q/k norms, rope theta 1e6. Width and depth are shrunk.

Like the tiny base it is pretrained on the sample blog's train posts, as documents and as ChatML
conversations, so that it has a chat format to keep and an end of turn to learn; without that, the
stop check has nothing to measure. Full-vocabulary pretraining would cost ~5 s a step on 2 cores, so
the base keeps only the rows of tokens its pretraining text uses (and the special tokens): every other
row is zero. A zero row's logit is exactly 0 whatever the hidden state, so the full softmax over
151,936 rows equals a softmax over the kept rows plus one constant logit, log(number of zero rows),
which is what pretraining computes. It trains a compact model over the kept rows (a dense gradient and
AdamW state for 151,936 rows would cost more than the model), then places each row at its token's id.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, Qwen3ForCausalLM

from blogtune_assets.core.chat_tokens import ChatEncoder
from blogtune_assets.core.code_version import code_version
from blogtune_assets.core.qwen3_tokenizer import QWEN3_TOKENIZER_VERSION, llama_cpp_sdist, qwen3_tokenizer_dir
from blogtune_assets.core.tiny_model import (
    PretrainSettings,
    TinyShape,
    blocks_of,
    pretrain,
    pretraining_stats,
    pretraining_texts,
    qwen3_config,
)
from blogtune_assets.core.tiny_model import build_key as tiny_build_key
from blogtune_assets.core.tiny_tokenizer import ENDOFTEXT
from blogtune_assets.core.profiles import SAMPLE_BLOG

QWEN3_SHAPE_VERSION = code_version("blogtune_assets.core.qwen3_shape")  # the rest is in the keys build_key adds
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
PRETRAIN = PretrainSettings()


def build_key() -> str:
    # The tokenizer's version and source are part of what is built (its vocabulary sizes the embedding);
    # the tiny base's key covers the rest it shares: pretraining code, shape, recipe and the bundled posts.
    blob = json.dumps(
        [QWEN3_SHAPE_VERSION, QWEN3_TOKENIZER_VERSION, llama_cpp_sdist().name, VOCAB_ROWS, tiny_build_key(SAMPLE_BLOG, SHAPE, PRETRAIN)]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def pretraining_blocks(tokenizer, train_texts: list[str], train_pairs: list[tuple[str, str]]) -> torch.Tensor:
    """The train posts as documents and as training-format conversations, shuffled, in blocks."""
    encoder = ChatEncoder(tokenizer.backend_tokenizer)
    end_of_text = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    documents = [encoder.plain_ids(text) + [end_of_text] for text in train_texts]
    documents += [encoder.encode(title, body).input_ids for title, body in train_pairs]
    random.Random(PRETRAIN.seed).shuffle(documents)
    return blocks_of(documents, PRETRAIN.block_size)


def full_vocabulary_loss(zero_rows: int):
    """The causal LM loss over the kept rows plus `zero_rows` rows whose logits are all exactly 0."""
    zero_rows_logit = math.log(zero_rows)  # their log-sum-exp

    def loss_of(model: Qwen3ForCausalLM, batch: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=batch).logits[:, :-1]
        rest = torch.full((*logits.shape[:-1], 1), zero_rows_logit)
        return F.cross_entropy(torch.cat([logits, rest], dim=-1).flatten(0, 1), batch[:, 1:].flatten())

    return loss_of


def compact_config(config, kept: torch.Tensor):
    """config for a model over the kept rows only, its special ids moved to their kept positions."""
    compact = copy.deepcopy(config)
    compact.vocab_size = len(kept)
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):  # nn.Embedding starts the pad row at zero
        setattr(compact, name, int(torch.searchsorted(kept, getattr(config, name))))
    return compact


def widened(compact: Qwen3ForCausalLM, kept: torch.Tensor, config) -> Qwen3ForCausalLM:
    """The compact model with its embedding rows at their token ids in a zero VOCAB_ROWS-row embedding."""
    weights = compact.state_dict()
    embedding = torch.zeros(VOCAB_ROWS, SHAPE.hidden_size)
    embedding[kept] = weights["model.embed_tokens.weight"]
    weights["model.embed_tokens.weight"] = weights["lm_head.weight"] = embedding
    model = Qwen3ForCausalLM(config)
    model.load_state_dict(weights)
    return model.eval()


def build_qwen3_shape_model(out_dir: Path, log=print) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir(log), trust_remote_code=False)
    _, train_texts, train_pairs = pretraining_texts(SAMPLE_BLOG, PRETRAIN.seed)
    blocks = pretraining_blocks(tokenizer, train_texts, train_pairs)
    special = torch.tensor(sorted(tokenizer.added_tokens_decoder))
    kept = torch.unique(torch.cat([blocks.flatten(), special]))  # sorted ids
    config = qwen3_config(SHAPE, tokenizer, vocab_size=VOCAB_ROWS, bos_token_id=BOS_TOKEN_ID)
    torch.manual_seed(PRETRAIN.seed)
    compact = Qwen3ForCausalLM(compact_config(config, kept))
    losses = pretrain(
        compact, torch.searchsorted(kept, blocks), PRETRAIN, log=log, loss_of=full_vocabulary_loss(VOCAB_ROWS - len(kept))
    )
    model = widened(compact, kept, config)
    # Qwen3's generation_config.json stops on both end tokens.
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.pad_token_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    log(f"qwen3-shape base: {sum(p.numel() for p in model.parameters()):,} parameters, {len(kept):,} of {VOCAB_ROWS:,} rows kept")
    return {**pretraining_stats(len(train_texts), blocks, PRETRAIN, losses), "embedding_rows_kept": len(kept)}

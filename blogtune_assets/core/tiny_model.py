"""The embedded tiny base: a small Qwen3 built and pretrained offline, in about a minute.

It stands in for Qwen3-4B where no weights can be downloaded, so it has the same
architecture class, tokenizer scheme and chat template. Like Qwen3-4B it is a
chat model: its short full-parameter pretraining sees the sample blog's *train*
posts as plain documents and as ChatML conversations, and never an eval post,
so base-versus-tuned comparisons on the eval split stay honest.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from blogtune_assets.core import sft
from blogtune_assets.core.cleaning import CLEANER_VERSION, clean_posts
from blogtune_assets.core.code_version import code_version
from blogtune_assets.core.jekyll import READER_VERSION, scan_site
from blogtune_assets.core.tiny_tokenizer import ENDOFTEXT, IM_END, train_tokenizer

if TYPE_CHECKING:  # build_key and the tokenizer's cache lookup (sft_dataset's step) need neither
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

# What builds the tiny base: this code, the tokenizer's, the reading and cleaning of the posts it pretrains on,
# and the libraries that compute it. A change to any of them rebuilds it; there is nothing to bump by hand.
TINY_VERSION = "-".join(
    [
        code_version("blogtune_assets.core.tiny_model", "blogtune_assets.core.tiny_tokenizer", "blogtune_assets.core.sft", packages=("torch", "transformers", "tokenizers")),
        READER_VERSION,
        CLEANER_VERSION,
    ]
)


@dataclass(frozen=True)
class TinyShape:
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 64
    intermediate_size: int = 512
    max_position_embeddings: int = 4096


@dataclass(frozen=True)
class PretrainSettings:
    # Many small steps beat few large ones this early in training: for the same tokens,
    # 600 steps of 4 x 128 reach loss ~5.0 where 150 steps of 8 x 256 stall at ~6.0.
    seed: int = 42
    block_size: int = 128
    batch_size: int = 4
    steps: int = 600
    learning_rate: float = 3e-3
    warmup_steps: int = 20


def qwen3_config(shape: TinyShape, tokenizer, vocab_size: int | None = None, bos_token_id: int | None = None) -> Qwen3Config:
    """vocab_size defaults to the tokenizer's; Qwen3-4B pads its embedding to 151,936 rows."""
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=vocab_size or len(tokenizer),
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        head_dim=shape.head_dim,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=shape.max_position_embeddings,
        tie_word_embeddings=True,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        bos_token_id=bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
        torch_dtype="float32",
    )


def pretraining_texts(site_dir: Path, seed: int) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """(all cleaned texts for the tokenizer, train-side texts, train-side (title, body) pairs)."""
    kept = clean_posts(scan_site(site_dir).posts).kept
    titles, bodies = kept["title"].to_list(), kept["body"].to_list()
    is_eval = sft.assign_split(titles, seed=seed)
    everything = [f"{t}\n\n{b}" for t, b in zip(titles, bodies)]
    train = [(t, b) for t, b, e in zip(titles, bodies, is_eval) if not e]
    return everything, [f"{t}\n\n{b}" for t, b in train], train


def build_key(site_dir: Path, shape: TinyShape = TinyShape(), settings: PretrainSettings = PretrainSettings()) -> str:
    """Changes only when the code version, the shape, the recipe or the bundled text changes."""
    digest = hashlib.sha256()
    digest.update(json.dumps([TINY_VERSION, asdict(shape), asdict(settings)]).encode())
    for path in sorted((site_dir / "_posts").rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(site_dir).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def blocks_of(documents: list[list[int]], block_size: int) -> torch.Tensor:
    """Tokenized documents, concatenated and cut into rows of block_size (the tail is dropped)."""
    import torch

    ids = [token for doc in documents for token in doc]
    n = len(ids) // block_size
    return torch.tensor(ids[: n * block_size], dtype=torch.long).view(n, block_size)


def causal_lm_loss(model: Qwen3ForCausalLM, batch: torch.Tensor) -> torch.Tensor:
    return model(input_ids=batch, labels=batch).loss


def pretrain(
    model: Qwen3ForCausalLM,
    blocks: torch.Tensor,
    settings: PretrainSettings,
    log=print,
    loss_of: Callable[[Qwen3ForCausalLM, torch.Tensor], torch.Tensor] = causal_lm_loss,
) -> list[float]:
    """A nanoGPT-style loop: AdamW, warmup then cosine decay, full parameters."""
    import torch

    generator = torch.Generator().manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.1, betas=(0.9, 0.95))
    losses = []
    model.train()
    started = time.monotonic()
    for step in range(settings.steps):
        lr = _lr(step, settings)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = blocks[torch.randint(len(blocks), (settings.batch_size,), generator=generator)]
        loss = loss_of(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == settings.steps - 1:
            log(f"pretrain step {step + 1}/{settings.steps} loss {loss.item():.3f} lr {lr:.2e} ({time.monotonic() - started:.0f}s)")
    model.eval()
    return losses


def _lr(step: int, s: PretrainSettings) -> float:
    if step < s.warmup_steps:
        return s.learning_rate * (step + 1) / s.warmup_steps
    progress = (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
    return s.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def build_tiny_tokenizer(site_dir: Path, settings: PretrainSettings = PretrainSettings()):
    """The tiny base's BPE, trained on every bundled post (its own step: sft_dataset counts with it)."""
    return train_tokenizer(pretraining_texts(site_dir, settings.seed)[0])


def build_tiny_model(
    site_dir: Path,
    out_dir: Path,
    tokenizer,
    shape: TinyShape = TinyShape(),
    settings: PretrainSettings = PretrainSettings(),
    log=print,
) -> dict:
    """Initialise and pretrain the model for tokenizer, save both like a hub checkpoint."""
    import torch
    from transformers import Qwen3ForCausalLM

    random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    _, train_texts, train_pairs = pretraining_texts(site_dir, settings.seed)
    chats = [
        tokenizer.apply_chat_template(sft.to_conversation(t, b)["conversations"], tokenize=False)
        for t, b in train_pairs
    ]
    documents = [text + ENDOFTEXT for text in train_texts] + chats
    random.Random(settings.seed).shuffle(documents)
    blocks = blocks_of([tokenizer(doc, add_special_tokens=False)["input_ids"] for doc in documents], settings.block_size)

    model = Qwen3ForCausalLM(qwen3_config(shape, tokenizer))
    losses = pretrain(model, blocks, settings, log=log)
    model.generation_config.eos_token_id = [tokenizer.convert_tokens_to_ids(IM_END), tokenizer.convert_tokens_to_ids(ENDOFTEXT)]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return pretraining_stats(len(train_texts), blocks, settings, losses)


def pretraining_stats(posts: int, blocks: torch.Tensor, settings: PretrainSettings, losses: list[float]) -> dict:
    """What an embedded base's pretraining saw and reached, for base_model's metadata."""
    return {
        "pretrain_posts": posts,
        "pretrain_tokens": int(blocks.numel()),
        "pretrain_steps": settings.steps,
        "pretrain_first_loss": round(losses[0], 4),
        "pretrain_final_loss": round(sum(losses[-10:]) / len(losses[-10:]), 4),
    }

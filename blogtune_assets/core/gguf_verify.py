"""Proof that a GGUF runs in llama.cpp (through llama-cpp-python) and matches the HF model."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM


@contextmanager
def load_llama(path: Path, n_ctx: int, logits_all: bool = False):
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=n_ctx, logits_all=logits_all, verbose=False, seed=42, n_threads=None)
    try:
        yield llm
    finally:
        llm.close()


def llama_tokenize(llm, text: str) -> list[int]:
    return llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)


def gguf_greedy(llm, prompt: list[int], n: int) -> list[int]:
    """n tokens by argmax, ignoring end tokens, so both runtimes are compared over the same length."""
    llm.reset()
    llm.eval(prompt)
    out = []
    for _ in range(n):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(token)
        llm.eval([token])
    return out


@torch.no_grad()
def hf_greedy_at_bf16(model_dir: Path, prompt: list[int], n: int) -> list[int]:
    """The merged model with its weights rounded to bf16 (the GGUF's precision), computed in fp32."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, use_safetensors=True, trust_remote_code=False)
    model = model.to(torch.float32).eval()
    ids = torch.tensor([prompt])
    out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0)
    return out[0, len(prompt) :].tolist()


def perplexity(llm, token_lists: list[list[int]]) -> float:
    """exp(mean next-token NLL) over every token after the first of each text."""
    total, count = 0.0, 0
    for tokens in token_lists:
        tokens = tokens[: llm.n_ctx()]
        llm.reset()
        llm.eval(tokens)
        logits = np.asarray(llm.scores[: len(tokens) - 1], dtype=np.float64)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(shifted).sum(axis=1))
        targets = np.asarray(tokens[1:])
        total += float((log_norm - shifted[np.arange(len(targets)), targets]).sum())
        count += len(targets)
    return math.exp(total / max(count, 1))


@dataclass
class Generation:
    title: str
    text: str
    finish_reason: str
    tokens: int


def generate_posts(llm, titles: list[str], max_tokens: int, **sampling) -> list[Generation]:
    """Bodies for titles through the GGUF's embedded chat template (llama-cpp-python renders it)."""
    out = []
    for title in titles:
        llm.reset()
        result = llm.create_chat_completion(
            messages=[{"role": "user", "content": title}], max_tokens=max_tokens, seed=42, **sampling
        )
        choice = result["choices"][0]
        out.append(Generation(title, choice["message"]["content"], choice["finish_reason"], result["usage"]["completion_tokens"]))
    return out

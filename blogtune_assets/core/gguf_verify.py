"""Proof that a GGUF runs in llama.cpp (through llama-cpp-python) and matches the HF model."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


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


def gguf_logits(llm, tokens: list[int]) -> np.ndarray:
    """llama.cpp's next-token logits at every position of tokens (teacher-forced), shape (len, vocab)."""
    llm.reset()
    llm.eval(tokens)
    return np.array(llm.scores[: len(tokens)], dtype=np.float32)


def gguf_next_token_logits(llm, tokens: list[int]) -> np.ndarray:
    """llama.cpp's logits for the token after tokens; needs no logits_all (one row, not n_ctx rows)."""
    llm.reset()
    llm.eval(tokens)
    return np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).copy()


@torch.no_grad()
def hf_logits_at_bf16(model_dir: Path, tokens: list[int]) -> np.ndarray:
    """The HF model's logits with its weights rounded to bf16 (the GGUF's precision), computed in fp32."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, use_safetensors=True, trust_remote_code=False)
    model = model.to(torch.float32).eval()
    return model(input_ids=torch.tensor([tokens])).logits[0].numpy()


@dataclass
class LogitAgreement:
    """How closely two runtimes' teacher-forced logits agree over the same tokens.

    Top-1 is compared only where the reference's two best logits are more than twice the
    tolerance apart: closer than that, each may move by the tolerance and a flip is rounding.
    """

    tolerance: float
    positions: int
    max_abs_diff: float
    decisive_positions: int
    top1_disagreements: int

    @property
    def passed(self) -> bool:
        return self.positions > 0 and self.max_abs_diff <= self.tolerance and self.top1_disagreements == 0


def compare_logits(reference: np.ndarray, candidate: np.ndarray, tolerance: float) -> LogitAgreement:
    if reference.shape != candidate.shape:
        raise ValueError(f"logit shapes differ: {reference.shape} vs {candidate.shape} (different vocabularies?)")
    top2 = np.sort(reference, axis=1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) > 2 * tolerance
    flips = reference.argmax(axis=1) != candidate.argmax(axis=1)
    return LogitAgreement(
        tolerance=tolerance,
        positions=len(reference),
        max_abs_diff=float(np.abs(reference - candidate).max()),
        decisive_positions=int(decisive.sum()),
        top1_disagreements=int((flips & decisive).sum()),
    )


# Max |logit difference| between the bf16 GGUF in llama.cpp and the HF model (bf16 weights, fp32
# compute). llama.cpp rounds activations to bf16 before each bf16 matmul, HF keeps them in fp32:
# on the tiny model that costs at most 0.03-0.05 (logits span about -14..10), two swapped layers 5.
LOGIT_TOLERANCE = 0.25
LOGIT_TOKENS = 256


@dataclass
class HFAgreement:
    texts: int
    tokenization_mismatches: list[int]  # indices of texts llama.cpp tokenizes differently
    logits: LogitAgreement | None  # over the first text's first LOGIT_TOKENS tokens

    @property
    def passed(self) -> bool:
        return self.texts > 0 and not self.tokenization_mismatches and self.logits is not None and self.logits.passed


def agreement_with_hf(gguf_path: Path, model_dir: Path, texts: list[str], tolerance: float = LOGIT_TOLERANCE) -> HFAgreement:
    """Whether a GGUF is the HF model: the same tokens for each text, and the same logits within tolerance."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    with load_llama(gguf_path, n_ctx=LOGIT_TOKENS, logits_all=True) as llm:
        mine = [llama_tokenize(llm, t) for t in texts]
        theirs = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        mismatches = [i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b]
        if mismatches or not texts:
            return HFAgreement(len(texts), mismatches, None)
        tokens = mine[0][:LOGIT_TOKENS]
        got = gguf_logits(llm, tokens)
    return HFAgreement(len(texts), [], compare_logits(hf_logits_at_bf16(model_dir, tokens), got, tolerance))


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

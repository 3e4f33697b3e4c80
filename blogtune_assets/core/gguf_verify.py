"""Proof that a GGUF runs in llama.cpp (through llama-cpp-python) and matches the HF model."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gguf
import numpy as np

from blogtune_assets.core.chat_tokens import ChatEncoder
from blogtune_assets.core.modelfile import SAMPLING
from blogtune_assets.core.sft import stop_conversations
from blogtune_assets.core.stopping import StopStats, end_of_body_prefixes, measure_stopping

if TYPE_CHECKING:  # torch and transformers are imported where used: the check thresholds below load without them
    import torch

    from blogtune_assets.core.gguf_export import Intermediate

# Not a GGUF key: the vocabulary size is the length of tokenizer.ggml.tokens.
VOCAB_SIZE = "vocabulary size (tokenizer.ggml.tokens)"


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


def hf_logits_at_precision(model_dir: Path, tokens: list[int], dtype: torch.dtype) -> np.ndarray:
    """The HF model's logits with its matrices rounded to dtype and its vectors kept fp32, as the
    intermediate GGUF stores them, computed in fp32: like for like with llama.cpp's run of that file."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, use_safetensors=True, trust_remote_code=False)
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() >= 2:
                weight.copy_(weight.to(dtype))
        return model.eval()(input_ids=torch.tensor([tokens])).logits[0].numpy()


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
        # With no decisive position, top-1 was never compared: the logits are too flat to prove anything.
        return self.decisive_positions > 0 and self.max_abs_diff <= self.tolerance and self.top1_disagreements == 0


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


# Max |logit difference| between the F16/BF16 GGUF in llama.cpp and the HF model (matrices rounded to
# the same type, fp32 compute), as a fraction of the HF logits' standard deviation, so that it means the
# same for models of any scale (qwen3-shape's logits, mostly its zero rows' exact 0, spread ~0.6; the
# tiny model's ~2.25). llama.cpp also rounds activations to that type before each matmul, HF keeps them in fp32.
# Measured on the tiny model's eval conversations: F16 (its fp32 merge) 0.003-0.004 absolute, a bf16
# copy of it 0.02-0.03, two swapped layers 5: tolerance 0.1 x 2.25 = 0.225.
LOGIT_TOLERANCE = 0.1
LOGIT_TOKENS = 256


# Fixed beside the eval conversations: Chinese, full-width punctuation, digits and code, so the
# tokenizer is compared on scripts and splits a blog's eval split may lack.
TOKENIZER_PROBE = "Fine-tuning Qwen3 on my blog (2024-06-01): 在博客上微调模型，效果不错！「中文标点」与English混排, x = 42;\n"


@dataclass
class HFAgreement:
    texts: int
    tokenization_mismatches: list[int]  # indices of texts llama.cpp tokenizes differently; index `texts` is TOKENIZER_PROBE
    logits: LogitAgreement | None  # over the first text's first LOGIT_TOKENS tokens

    @property
    def passed(self) -> bool:
        return self.texts > 0 and not self.tokenization_mismatches and self.logits is not None and self.logits.passed


def gguf_intermediate(path: Path) -> Intermediate:
    from blogtune_assets.core.gguf_export import BY_FILE_TYPE

    file_type = gguf.GGUFReader(path).get_field(gguf.Keys.General.FILE_TYPE).contents()
    if file_type not in BY_FILE_TYPE:
        raise ValueError(f"{path} has file type {file_type}, not F16 or BF16: compare the intermediate GGUF with the HF model, not a quantized one")
    return BY_FILE_TYPE[file_type]


def agreement_with_hf(gguf_path: Path, model_dir: Path, texts: list[str], relative_tolerance: float = LOGIT_TOLERANCE) -> HFAgreement:
    """Whether an F16/BF16 GGUF is the HF model: the same tokens for each text and for TOKENIZER_PROBE,
    and the same logits within relative_tolerance x their spread (HF weights rounded to the GGUF's precision)."""
    from transformers import AutoTokenizer

    precision = gguf_intermediate(gguf_path).torch_dtype
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    compared = [*texts, TOKENIZER_PROBE]
    with load_llama(gguf_path, n_ctx=LOGIT_TOKENS, logits_all=True) as llm:
        mine = [llama_tokenize(llm, t) for t in compared]
        theirs = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in compared]
        mismatches = [i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b]
        if mismatches or not texts:
            return HFAgreement(len(texts), mismatches, None)
        tokens = mine[0][:LOGIT_TOKENS]
        got = gguf_logits(llm, tokens)
    reference = hf_logits_at_precision(model_dir, tokens, precision)
    return HFAgreement(len(texts), [], compare_logits(reference, got, relative_tolerance * float(reference.std())))


@dataclass(frozen=True)
class Mismatch:
    key: str
    in_gguf: object
    in_hf: object


def expected_metadata(model_dir: Path) -> dict[str, object]:
    """The GGUF metadata the HF model at model_dir implies, by GGUF key (None: the key must be absent)."""
    from transformers import AutoConfig, AutoTokenizer

    from blogtune_assets.core.gguf_export import SUPPORTED, head_dim, special_token_ids

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    arch = gguf.MODEL_ARCH_NAMES[SUPPORTED[config.architectures[0]]]
    llm, attention, rope, tok = gguf.Keys.LLM, gguf.Keys.Attention, gguf.Keys.Rope, gguf.Keys.Tokenizer
    hparams = {
        llm.CONTEXT_LENGTH: config.max_position_embeddings,
        llm.EMBEDDING_LENGTH: config.hidden_size,
        llm.BLOCK_COUNT: config.num_hidden_layers,
        llm.FEED_FORWARD_LENGTH: config.intermediate_size,
        attention.HEAD_COUNT: config.num_attention_heads,
        attention.HEAD_COUNT_KV: config.num_key_value_heads,
        attention.KEY_LENGTH: head_dim(config),
        attention.VALUE_LENGTH: head_dim(config),
        rope.FREQ_BASE: float(config.rope_parameters["rope_theta"]),
        attention.LAYERNORM_RMS_EPS: config.rms_norm_eps,
    }
    ids = special_token_ids(tokenizer, config)
    return {
        gguf.Keys.General.ARCHITECTURE: arch,
        **{key.format(arch=arch): value for key, value in hparams.items()},
        VOCAB_SIZE: config.vocab_size,
        tok.BOS_ID: ids["bos"],
        tok.EOS_ID: ids["eos"],
        tok.PAD_ID: ids["pad"],
        tok.EOT_ID: ids["eot"],
    }


def _same(in_gguf: object, in_hf: object) -> bool:
    if isinstance(in_hf, float):  # stored as float32
        return isinstance(in_gguf, float) and math.isclose(in_gguf, in_hf, rel_tol=1e-6)
    return in_gguf == in_hf


def gguf_metadata_mismatches(gguf_path: Path, model_dir: Path) -> list[Mismatch]:
    """Where the GGUF's special token ids and hyperparameters differ from the HF model's config and tokenizer."""
    reader = gguf.GGUFReader(gguf_path)
    found = {name: field.contents() for name, field in reader.fields.items() if field.types[0] != gguf.GGUFValueType.ARRAY}
    found[VOCAB_SIZE] = len(reader.get_field(gguf.Keys.Tokenizer.LIST).data)
    return [
        Mismatch(key, found.get(key), value)
        for key, value in expected_metadata(model_dir).items()
        if not _same(found.get(key), value)
    ]


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


PERPLEXITY_TEXTS = 8
SAMPLE_TITLES = 3


@dataclass
class GgufMeasures:
    intermediate_perplexity: float
    q4_k_m_perplexity: float
    q4_k_m_stopping: StopStats
    samples: list[Generation]


def measure_gguf(intermediate: Path, q4: Path, tokenizer, evals: list[dict], trains: list[dict], max_length: int) -> GgufMeasures:
    """What gguf_q4km reports of its two files, run in llama.cpp: perplexity of each on eval conversations, the
    Q4_K_M's stop statistics after whole posts, and sample posts sampled as the Modelfile samples them."""
    # Encoded as training encodes them: post text that quotes control tokens stays text.
    encoder = ChatEncoder(tokenizer.backend_tokenizer)
    token_lists = [encoder.encode_messages(e["conversations"]).input_ids for e in evals[:PERPLEXITY_TEXTS]]
    perplexities = []
    for path in (intermediate, q4):
        with load_llama(path, n_ctx=max_length, logits_all=True) as llm:
            perplexities.append(perplexity(llm, token_lists))
    prefixes = end_of_body_prefixes(encoder, stop_conversations(evals, trains), max_length)
    with load_llama(q4, n_ctx=max_length) as llm:
        stopping = measure_stopping(lambda p: gguf_next_token_logits(llm, p), prefixes, encoder.im_end_id)
        # Information, not a gate: sampled with the Modelfile's settings, as an ollama user gets them.
        titles = [e["conversations"][0]["content"] for e in evals[:SAMPLE_TITLES]]
        samples = generate_posts(llm, titles, max_length, **SAMPLING)
    return GgufMeasures(*perplexities, stopping, samples)

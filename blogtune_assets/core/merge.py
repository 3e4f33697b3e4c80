"""Fold the LoRA adapter into the full-precision base: W + alpha/r · B·A for each targeted layer.

Merging into a 4-bit base degrades the model, so the merge base is always the
full-precision checkpoint (as in the reference run). Only one copy of the
weights is held: adapter logits and base completions are taken from the
PEFT-wrapped model first, then merge_and_unload() folds the adapter in place.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from blogtune_assets.core.chat_tokens import ChatEncoder
from blogtune_assets.core.stopping import StopStats, end_of_body_prefixes, measure_stopping

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Max |adapter logits - merged logits| a merge may show, by merge dtype.
LOGIT_TOLERANCE = {"float32": 1e-3, "bfloat16": 0.5, "float16": 0.25}


def stored_dtype(model_dir: Path) -> str:
    """The dtype a checkpoint's weights are stored in, as its config.json says (`torch_dtype` before transformers 5)."""
    config = json.loads((model_dir / "config.json").read_text())
    dtype = config.get("dtype") or config.get("torch_dtype") or "float32"
    if dtype not in DTYPES:
        raise ValueError(f"{model_dir / 'config.json'} stores dtype {dtype!r}; set the profile's merge_dtype to one of {sorted(DTYPES)}")
    return dtype


def max_abs_difference(expected: list[torch.Tensor], actual: list[torch.Tensor]) -> float:
    """The largest |expected - actual| over all pairs; inf when any value is NaN or inf, which no tolerance passes
    (a Python max() over per-pair maxima skips a NaN that is not first)."""
    worst = 0.0
    for a, b in zip(expected, actual, strict=True):
        difference = (a.float() - b.float()).abs()
        if not torch.isfinite(difference).all():
            return math.inf
        worst = max(worst, difference.max().item())
    return worst


@dataclass
class MergeResult:
    dtype: str  # what the merge ran and saved in
    max_abs_logit_diff: float
    logit_tolerance: float  # LOGIT_TOLERANCE of that dtype
    base_completions: list[str]
    tuned_completions: list[str]
    base_stopping: dict
    tuned_stopping: dict


def chat_prompt(tokenizer, title: str) -> str:
    """The inference prompt: the training render up to the body (empty thinking block included)."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": title}], tokenize=False, add_generation_prompt=True, enable_thinking=False
    )


def stop_token_ids(tokenizer, model) -> list[int]:
    """Stop on every end token the checkpoint knows: Qwen3 configs disagree on eos (151643 vs 151645)."""
    ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")}
    configured = model.generation_config.eos_token_id
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None and i >= 0)


@torch.no_grad()
def greedy(model, tokenizer, encoder: ChatEncoder, titles: list[str], max_new_tokens: int) -> list[str]:
    out = []
    for title in titles:
        prompt = torch.tensor([encoder.prompt_ids(title)], device=model.device)
        ids = model.generate(
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=stop_token_ids(tokenizer, model),
            pad_token_id=tokenizer.pad_token_id,
        )
        out.append(tokenizer.decode(ids[0, prompt.shape[1] :], skip_special_tokens=True))
    return out


LOGIT_TOKENS = 256


@torch.no_grad()
def logits_for(model, encoder: ChatEncoder, conversations: list[list[dict]]) -> list[torch.Tensor]:
    """Logits over each whole conversation as training encodes it (first LOGIT_TOKENS tokens)."""
    out = []
    for messages in conversations:
        ids = torch.tensor([encoder.encode_messages(messages).input_ids[:LOGIT_TOKENS]], device=model.device)
        out.append(model(input_ids=ids).logits.float().cpu())
    return out


@torch.no_grad()
def hf_stop_stats(model, prefixes: list[list[int]], im_end_id: int) -> StopStats:
    def next_token_logits(tokens: list[int]):
        return model(input_ids=torch.tensor([tokens], device=model.device)).logits[0, -1].float().cpu().numpy()

    return measure_stopping(next_token_logits, prefixes, im_end_id)


def merge_adapter(
    merge_base_dir: Path,
    adapter_dir: Path,
    out_dir: Path,
    eval_conversations: list[list[dict]],
    eval_titles: list[str],
    stop_conversations: list[list[dict]],
    max_length: int,
    dtype: str | None = None,
    max_new_tokens: int = 64,
    device: str = "cpu",
) -> MergeResult:
    """Merge in `dtype`, or when None in the dtype the merge base is stored in."""
    dtype = dtype or stored_dtype(merge_base_dir)
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir, trust_remote_code=False)
    base = AutoModelForCausalLM.from_pretrained(
        merge_base_dir, dtype=DTYPES[dtype], device_map={"": device}, use_safetensors=True, trust_remote_code=False
    )
    model = PeftModel.from_pretrained(base, adapter_dir)
    model.eval()

    encoder = ChatEncoder(tokenizer.backend_tokenizer)
    stop_prefixes = end_of_body_prefixes(encoder, stop_conversations, max_length)

    adapter_logits = logits_for(model, encoder, eval_conversations)
    with model.disable_adapter():
        base_completions = greedy(model, tokenizer, encoder, eval_titles, max_new_tokens)
        base_stopping = hf_stop_stats(model, stop_prefixes, encoder.im_end_id)
    merged = model.merge_and_unload()
    merged_logits = logits_for(merged, encoder, eval_conversations)
    tuned_completions = greedy(merged, tokenizer, encoder, eval_titles, max_new_tokens)
    tuned_stopping = hf_stop_stats(merged, stop_prefixes, encoder.im_end_id)

    merged.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return MergeResult(
        dtype=dtype,
        max_abs_logit_diff=max_abs_difference(adapter_logits, merged_logits),
        logit_tolerance=LOGIT_TOLERANCE[dtype],
        base_completions=base_completions,
        tuned_completions=tuned_completions,
        base_stopping=base_stopping.as_dict(),
        tuned_stopping=tuned_stopping.as_dict(),
    )

"""Whether a model learned to stop: how likely `<|im_end|>` is right after a post's whole body.

A sampled generation that happens to end within a token budget is luck; the next-token
distribution at the end of real bodies is a property. Each conversation is rendered as training
encodes it and cut just before the `<|im_end|>` that closes the assistant turn. Only conversations
that fit in the training length count: a truncated one never showed the model its end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from blogtune_assets.core.chat_tokens import ChatEncoder

# Fine-tuning must raise P(<|im_end|>) after a body by this factor (geometric mean over the posts)...
STOP_GAIN = 1.25
# ...unless the model already makes it the most likely next token after this share of the posts.
# The tiny model shows the first (the tiny recipe raised it 1.88x on the hardest base measured, 11.7x in the
# demo: benchmarks/README.md, the stop check's margin); a 4B chat model whose base already stops shows the second.
STOP_TOP1_SHARE = 0.5
# Bodies measured: enough for a median, cheap on a CPU.
STOP_TEXTS = 16


def end_of_body_prefixes(
    encoder: ChatEncoder, conversations: Sequence[list[dict]], max_length: int, limit: int = STOP_TEXTS
) -> list[list[int]]:
    """Up to `limit` conversations' tokens, each cut just before the `<|im_end|>` that ends it."""
    prefixes = []
    for messages in conversations:
        tokens = encoder.encode_messages(messages).input_ids
        ends = [i for i, t in enumerate(tokens) if t == encoder.im_end_id]
        if ends and ends[-1] < max_length:
            prefixes.append(list(tokens[: ends[-1]]))
        if len(prefixes) == limit:
            break
    return prefixes


@dataclass(frozen=True)
class StopStats:
    texts: int
    mean_log_probability: float  # mean log P(<|im_end|>) right after the body
    top1_share: float  # share of bodies after which <|im_end|> is the most likely next token
    median_rank: float  # 0 = the most likely next token

    @property
    def geometric_mean_probability(self) -> float:
        return math.exp(self.mean_log_probability)

    def as_dict(self) -> dict:
        return {**asdict(self), "geometric_mean_probability": self.geometric_mean_probability}

    @classmethod
    def from_dict(cls, stored: dict) -> StopStats:
        return cls(**{f.name: stored[f.name] for f in fields(cls)})


def stop_stats(last_logits: Sequence[np.ndarray], im_end_id: int) -> StopStats:
    """From the next-token logits at the end of each body (one vocabulary-sized row per text)."""
    log_probs, ranks = [], []
    for row in last_logits:
        row = np.asarray(row, dtype=np.float64)
        shifted = row - row.max()
        log_probs.append(float(shifted[im_end_id] - np.log(np.exp(shifted).sum())))
        ranks.append(int((row > row[im_end_id]).sum()))
    if not ranks:  # no post fits in the training length: nothing measured, and the check says so
        return StopStats(texts=0, mean_log_probability=-math.inf, top1_share=0.0, median_rank=math.inf)
    return StopStats(
        texts=len(ranks),
        mean_log_probability=float(np.mean(log_probs)),
        top1_share=float(np.mean([r == 0 for r in ranks])),
        median_rank=float(np.median(ranks)),
    )


def measure_stopping(next_token_logits: Callable[[list[int]], np.ndarray], prefixes: list[list[int]], im_end_id: int) -> StopStats:
    return stop_stats([next_token_logits(p) for p in prefixes], im_end_id)


def learned_to_stop(tuned: StopStats, base: StopStats) -> bool:
    if not tuned.texts:
        return False
    gained = tuned.mean_log_probability - base.mean_log_probability >= math.log(STOP_GAIN)
    return gained or tuned.top1_share >= STOP_TOP1_SHARE

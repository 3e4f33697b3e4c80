"""What the reference recipe costs on a GPU, from a blog's token count, before any GPU is rented."""

from __future__ import annotations

from dataclasses import dataclass

# The reference run: 25.1 M tokens (21,434 posts), 2 epochs, 10 h 52 min on one RTX 4070, Qwen3-4B
# 4-bit QLoRA r=32, batch 2 x 8, max length 4,096: the corpus's tokens per second of training.
REFERENCE_TOKENS_PER_S = 25.1e6 * 2 / (10 * 3600 + 52 * 60)


@dataclass(frozen=True)
class GpuEstimate:
    gpu: str
    tokens_per_s: float
    source: str


GPUS = (
    GpuEstimate("RTX 4070 (12 GB)", REFERENCE_TOKENS_PER_S, "measured: the reference run"),
    # Same architecture (Ada) and recipe: scaled by FP32 throughput, 16,384 vs 5,888 cores at 2.52 vs
    # 2.475 GHz boost (NVIDIA's specifications), 82.6 vs 29.1 TFLOPS. An estimate, not a measurement.
    GpuEstimate("RTX 4090 (24 GB)", REFERENCE_TOKENS_PER_S * 82.6 / 29.1, "scaled from the RTX 4070 by Ada FP32 TFLOPS (82.6 / 29.1)"),
)


def training_hours(corpus_tokens: int, epochs: float) -> list[tuple[str, float, str]]:
    """(gpu, hours, source) for training the recipe on corpus_tokens (counted as sft_dataset counts them)."""
    return [(g.gpu, corpus_tokens * epochs / g.tokens_per_s / 3600, g.source) for g in GPUS]

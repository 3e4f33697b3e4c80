"""Profiles: one settings object per way of running blogtune.

`tiny` (default) runs offline on a CPU with the embedded model; `qwen3-4b` is
the reference run; `qwen3-shape` runs the reference run's vocabulary and geometry
offline on a CPU. All go through the same code; only these values differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_BLOG = REPO_ROOT / "data" / "sample_blog"

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainSettings:
    """The reference run's recipe; a profile shrinks only what a CPU cannot afford."""

    # The reference run's values throughout; why each is what it is:
    lora_r: int = 32  # 66 M trainable parameters on Qwen3-4B (1.6% of it): 0.5 GB of LoRA + AdamW state in bf16
    lora_alpha: int = 32  # alpha = r: the update is scaled by 1, so lr means the same at any rank
    lora_dropout: float = 0.0  # over 2 epochs the eval loss, not dropout, is the guard against overfitting
    target_modules: tuple[str, ...] = LORA_TARGETS  # all seven: QLoRA found every linear layer needed to match full tuning
    per_device_train_batch_size: int = 2  # two examples of up to 4,096 tokens: ~9 GB estimated, fits 12 GB (core/memory.py)
    # Per optimizer step across all processes: N data-parallel processes each accumulate 8 / N micro-batches,
    # so the recipe's 16 sequences a step (and its steps and learning rate) hold on any number of GPUs.
    gradient_accumulation_steps: int = 8
    num_train_epochs: float = 2.0  # the reference run's final loss 1.417 after 2; each epoch is ~5.4 h on an RTX 4070
    max_steps: int = -1  # -1: epochs decide; profiles that must finish in CI set a step count
    learning_rate: float = 2e-4  # the QLoRA paper's rate for 7B-13B models (Dettmers et al. 2023)
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.03  # ~80 of ~2,700 steps: AdamW's moments settle before the full rate
    max_length: int = 4096  # truncates 808 of 21,381 reference examples, 8.7% of their tokens (benchmarks/README.md)
    seed: int = 42
    logging_steps: int = 10
    save_steps: int = 200  # a checkpoint (and an eval) every ~50 min on an RTX 4070: a crash costs at most that
    eval_size: int = 200  # posts held out: enough for a stable eval loss, at most 10% of a small blog (core/sft.py)
    # Train loss before and after is measured on a seeded sample of this many training posts: per-batch
    # losses are noisy at batch 2, and the whole split of a 21,434-post blog would cost two forward
    # passes over 25 M tokens, a third of an epoch's compute.
    train_loss_sample: int = 200
    # Each micro-batch's examples flattened into one row, position ids restarting per example, so no padding is
    # computed (30.6% of tokens at 2 x 4,096 on the reference lengths when padded) while the examples per step
    # and their order stay the recipe's. False pads each micro-batch instead, grouped by length (1.8% padding).
    padding_free: bool = True
    # Warm start (lora_adapter's training_mode "warm"): the published adapter goes on training on the posts
    # added or changed since it was trained, plus replay_ratio times as many of the posts it was trained on
    # (drawn with the seed), so it does not drift toward the newest posts. warm_epochs passes over that set,
    # on a schedule of its own (the recipe's warmup ratio and scheduler, over the warm steps); one pass
    # lowered a new post's loss without raising the eval loss (benchmarks/README.md, warm start).
    replay_ratio: float = 3.0
    warm_epochs: float = 1.0
    # A warm adapter is published only if its eval loss is at most (1 + this) x its parent's, measured on the
    # same eval split before and after; otherwise the parent stays published (benchmarks/README.md, warm start).
    forgetting_tolerance: float = 0.02

    @property
    def effective_batch(self) -> int:
        """Sequences per optimizer step, the same for any number of data-parallel processes."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    def accumulation_per_process(self, num_processes: int) -> int:
        """Micro-batches each of `num_processes` accumulates so that a step still sees `effective_batch` sequences."""
        if num_processes < 1 or self.gradient_accumulation_steps % num_processes:
            divisors = [n for n in range(1, self.gradient_accumulation_steps + 1) if self.gradient_accumulation_steps % n == 0]
            raise ValueError(
                f"gradient_accumulation_steps {self.gradient_accumulation_steps} does not split across {num_processes} "
                f"data-parallel processes, so the recipe's {self.effective_batch} sequences per optimizer step would change. "
                f"Set BLOGTUNE_NUM_PROCESSES to one of {divisors}, or gradient_accumulation_steps to a multiple of "
                f"{num_processes} in lora_adapter's run config (ops: lora_adapter: config: gradient_accumulation_steps)."
            )
        return self.gradient_accumulation_steps // num_processes


@dataclass(frozen=True)
class Profile:
    name: str
    # Hugging Face hub ids, or None for a base built locally (see `embedded_base`).
    base_model_id: str | None
    merge_base_model_id: str | None
    # The merge base is full precision. None merges in the dtype it is stored in (config.json): Qwen3 ships
    # bf16, whose range fp16 activations do not have (they can overflow to inf); the embedded bases are fp32.
    merge_dtype: str | None = None
    train: TrainSettings = field(default_factory=TrainSettings)
    # Which local build stands in for the hub base: "tiny" or "qwen3-shape" (EMBEDDED_BUILDS in core/base_model.py).
    embedded_base: str | None = None

    @property
    def embedded(self) -> bool:
        return self.embedded_base is not None


PROFILES = {
    "tiny": Profile(
        name="tiny",
        base_model_id=None,
        merge_base_model_id=None,
        # 40 posts make 2-3 optimizer steps an epoch at 2 x 8, too few to move a LoRA: the tiny
        # profile steps every batch, for more epochs, at a higher rate. Nothing else changes.
        # 12 epochs at 3e-3 (240 steps), because the stop check (core/stopping.py) must pass on whatever base a
        # CPU builds, and bases differ: P(<|im_end|>) after a body was 0.5%, 1.2% and 2.3% on bases pretrained
        # with seeds 42, 1 and 2 on one CPU, 1.7% on another CPU's seed-42 base. 4 epochs at 1e-3 raised it
        # 3.9x, 1.5x, 0.79x and 0.95x (two below the check's 1.25x); 8 at 3e-3 8.3x, 2.8x, 1.42x and 1.98x;
        # 12 at 3e-3 1.88x on the hardest (seed 2). The eval loss came out lower each time.
        train=TrainSettings(
            gradient_accumulation_steps=1,
            num_train_epochs=12.0,
            learning_rate=3e-3,
            max_length=1024,
            logging_steps=5,
            save_steps=20,
        ),
        embedded_base="tiny",
    ),
    # Qwen3-4B's vocabulary (the real tokenizer, 151,936 embedding rows, tied) and its attention geometry
    # (head dim 128, 4 query heads per KV head, q/k norms, rope theta 1e6), shrunk in width and depth and
    # pretrained for a minute on the sample blog: it proves ids, shapes, merge and export on a CPU.
    "qwen3-shape": Profile(
        name="qwen3-shape",
        base_model_id=None,
        merge_base_model_id=None,
        train=TrainSettings(
            gradient_accumulation_steps=1,
            # Each step costs ~5 s on 2 cores, most of it the 151,936-wide logits. Measured on the sample
            # blog, P(<|im_end|>) after a body goes 1.07% -> 1.29% in 12 steps at 1e-3 (short of the
            # stop check's 1.25x), 1.43% in 12 at 3e-3 (1.33x), 1.50% in 16 at 3e-3 (1.41x, the margin kept).
            # That was one CPU's base: an AMD EPYC's starts at 4.03% and ends at 1.87%, so on this profile the
            # stop check's verdict depends on the machine (test_real_profiles.py does not assert it).
            max_steps=16,
            learning_rate=3e-3,
            max_length=512,  # 10 of the sample blog's 42 posts fit whole, for the stop measurement
            train_loss_sample=4,
            logging_steps=1,
            save_steps=16,  # each eval and checkpoint costs seconds at this vocabulary: one of each, at the end
        ),
        embedded_base="qwen3-shape",
    ),
    "qwen3-4b": Profile(
        name="qwen3-4b",
        base_model_id="unsloth/Qwen3-4B-unsloth-bnb-4bit",
        merge_base_model_id="unsloth/Qwen3-4B",
    ),
}


# The names a BLOGTUNE_PROFILE may take, as a type: a misspelt one fails when the definitions load
# (`dagster definitions validate`), naming these, not a run later.
ProfileName = Literal["tiny", "qwen3-shape", "qwen3-4b"]
assert set(get_args(ProfileName)) == set(PROFILES), "ProfileName must list exactly the PROFILES"


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}") from None

"""How much of training's compute is padding, and what packing or padding-free batching saves.

1. On the real length distribution (a synthetic blog at the reference run's 21,434 posts,
   counted with the tiny profile's tokenizer and rescaled to the reference run's mean of
   1,169 Qwen3 tokens per example) with batch 2 and max length 4,096: the share of computed
   tokens that are padding when batches are padded (random order, as the trainer draws
   them, and length-grouped), against padding-free batching / BFD packing, and what
   truncation at 4,096 throws away.
2. Tokens/s of a tiny-shaped Qwen3 with LoRA on the CPU, through trl's SFTTrainer and
   blogtune_assets.core.train's helpers, for each mode (a few dozen steps each, each in a
   fresh process).

    .venv/bin/python -m benchmarks.training_efficiency --posts 21434 --steps 24
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import random
import tempfile
from pathlib import Path

from benchmarks import measure
from blogtune_assets.core.batching import padding_share
from benchmarks.data_pipeline import MAX_LENGTH
from benchmarks.synthetic_blog import REFERENCE, write_blog

REFERENCE_MEAN_TOKENS = 1169  # per example, Qwen3 tokenizer, from the reference run
BATCH = 2
# mode → (TrainSettings, SFTConfig) overrides; padding_free is the recipe's default (TrainSettings.padding_free).
MODES = {
    "padded": ({"padding_free": False}, {"train_sampling_strategy": "random"}),
    "padded_length_grouped": ({"padding_free": False}, {}),
    "padding_free": ({}, {}),
    "padding_free_bfd_packing": ({}, {"packing": True, "packing_strategy": "bfd", "padding_free": False, "max_length": MAX_LENGTH}),
}


def example_lengths(posts: int, work: Path, tokenizer_dir: Path) -> list[int]:
    """Untruncated token counts of every example of a synthetic blog, with the tiny tokenizer."""
    from tokenizers import Tokenizer

    from blogtune_assets.core import sft
    from blogtune_assets.core.chat_tokens import ChatEncoder
    from blogtune_assets.core.cleaning import clean_posts
    from blogtune_assets.core.jekyll import scan_site

    write_blog(work / "blog", posts)
    examples = sft.build_examples(clean_posts(scan_site(work / "blog").posts).kept)
    sft.write_jsonl(work / "all.jsonl", examples)
    return sft.count_tokens(ChatEncoder(Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))), examples, MAX_LENGTH).tokens


def padding_shares(lengths: list[int], max_length: int = MAX_LENGTH, batch: int = BATCH, seed: int = 42) -> dict:
    """Computed vs real tokens per batching mode, for one epoch over `lengths`."""
    kept = [min(n, max_length) for n in lengths]
    real = sum(kept)
    bins = best_fit_decreasing(kept, max_length)
    return {
        "examples": len(lengths),
        "tokens_before_truncation": sum(lengths),
        "tokens_after_truncation": real,
        "truncated_examples": sum(n > max_length for n in lengths),
        "share_lost_to_truncation": 1 - real / sum(lengths),
        "padding_share": {
            "padded": padding_share(kept, batch, grouped=False, seed=seed),
            "padded_length_grouped": padding_share(kept, batch, grouped=True, seed=seed),
            "padding_free": 0.0,
            "padding_free_bfd_packing": 0.0,
        },
        "steps_per_epoch": {
            "padded": -(-len(kept) // batch),
            "padding_free_bfd_packing": -(-len(bins) // batch),
        },
        "bfd_bin_fill": real / (len(bins) * max_length),
    }


def best_fit_decreasing(lengths: list[int], capacity: int) -> list[int]:
    """Each bin's used tokens after best-fit-decreasing packing (trl's 'bfd' strategy)."""
    free: list[int] = []  # remaining capacity of each open bin, kept sorted
    for n in sorted(lengths, reverse=True):
        i = bisect.bisect_left(free, n)  # the tightest bin that still fits, else a new one
        remaining = (free.pop(i) if i < len(free) else capacity) - n
        bisect.insort(free, remaining)
    return [capacity - f for f in free]


def train_mode(mode: str, model_dir: Path, dataset_dir: Path, steps: int, out: Path) -> dict:
    """A few dozen LoRA steps of the tiny-shaped model on the CPU; real (non-padding) tokens per second."""
    import time

    import torch
    from transformers import AutoTokenizer
    from trl import SFTTrainer

    from blogtune_assets.core.train import Device, load_sft_split, load_train_model, lora_config, sft_config
    from blogtune_assets.core.profiles import get_profile

    torch.manual_seed(42)
    device = Device("cpu")
    settings_overrides, config_overrides = MODES[mode]
    settings = dataclasses.replace(get_profile("tiny").train, max_length=MAX_LENGTH, max_steps=steps, **settings_overrides)
    config = dataclasses.replace(
        sft_config(settings, out, device), eval_strategy="no", save_strategy="no", report_to=[], logging_steps=steps, **config_overrides
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    data = load_sft_split(dataset_dir, tokenizer, MAX_LENGTH)
    trainer = SFTTrainer(
        model=load_train_model(model_dir, device),
        args=config,
        train_dataset=data["train"],
        processing_class=tokenizer,
        peft_config=lora_config(settings),
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    tokens = max(h.get("num_tokens", 0) for h in trainer.state.log_history)
    return {"mode": mode, "steps": steps, "train_s": seconds, "real_tokens": int(tokens), "real_tokens_per_s": tokens / seconds}


def tiny_random_model(tokenizer_dir: Path, out: Path) -> Path:
    """The tiny profile's shape, random init: throughput does not depend on the weights."""
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    from blogtune_assets.core.tiny_model import TinyShape, qwen3_config

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    Qwen3ForCausalLM(qwen3_config(TinyShape(), tokenizer)).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def training_set(all_jsonl: Path, out: Path, examples: int, seed: int = 42) -> Path:
    lines = all_jsonl.read_text(encoding="utf-8").splitlines()
    random.Random(seed).shuffle(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.jsonl").write_text("\n".join(lines[:examples]) + "\n", encoding="utf-8")
    (out / "eval.jsonl").write_text(lines[examples] + "\n", encoding="utf-8")
    return out


def plot(shares: dict, runs: list[dict], lengths: list[int], out: Path) -> Path:
    fig, axes = measure.new_figure(3)
    hist, bars, speed = axes[0]
    hist.hist(lengths, bins=60, color="#4f43dd")
    hist.axvline(MAX_LENGTH, color="k", ls=":")
    hist.set(xlabel="tokens per example (reference scale)", ylabel="examples", title="length distribution")
    modes = list(shares["padding_share"])
    bars.bar(range(len(modes)), [100 * shares["padding_share"][m] for m in modes], color="#d55")
    bars.set_xticks(range(len(modes)), [m.replace("_", "\n") for m in modes], fontsize=7)
    bars.set(ylabel="% of computed tokens", title=f"padding at batch {BATCH}, max {MAX_LENGTH}")
    speed.bar(range(len(runs)), [r["real_tokens_per_s"] for r in runs], color="#4a4")
    speed.set_xticks(range(len(runs)), [r["mode"].replace("_", "\n") for r in runs], fontsize=7)
    speed.set(ylabel="real tokens/s", title="tiny model, LoRA, CPU")
    return measure.save_figure(fig, out, "training_efficiency")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=REFERENCE["posts"])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--train-examples", type=int, default=400)
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES), help="none: only the length arithmetic")
    parser.add_argument("--out", type=Path, default=measure.RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="blogtune-train-") as tmp:
        work = Path(tmp)
        tokenizer_dir = measure.tiny_tokenizer(work / "tokenizer")
        tiny_lengths = example_lengths(args.posts, work, tokenizer_dir)
        scale = REFERENCE_MEAN_TOKENS / (sum(tiny_lengths) / len(tiny_lengths))
        lengths = [max(1, round(n * scale)) for n in tiny_lengths]
        shares = padding_shares(lengths)
        model_dir = tiny_random_model(tokenizer_dir, work / "model")
        dataset_dir = training_set(work / "all.jsonl", work / "dataset", args.train_examples)
        runs = [measure.in_child(train_mode, mode, model_dir, dataset_dir, args.steps, work / mode) for mode in args.modes]
    measure.print_table(
        ["mode", "padding % (reference lengths)", "real tokens/s (tiny, CPU)", "peak MB"],
        [[r["mode"], 100 * shares["padding_share"][r["mode"]], r["real_tokens_per_s"], r["peak_rss_mb"]] for r in runs],
    )
    print(json.dumps({k: v for k, v in shares.items() if k != "padding_share"}, indent=1))
    payload = {
        "batch": BATCH,
        "max_length": MAX_LENGTH,
        "length_scale_tiny_to_qwen3": scale,
        "tiny_mean_tokens": sum(tiny_lengths) / len(tiny_lengths),
        "reference_lengths": shares,
        "cpu_runs": runs,
    }
    print("wrote", measure.write_results(args.out, "training_efficiency", payload), plot(shares, runs, lengths, args.out))
    return payload


if __name__ == "__main__":
    main()

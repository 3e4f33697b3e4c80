"""Does the tiny recipe teach the model to stop, whatever base the CPU builds?

The tiny base is pretrained on the machine that runs blogtune, and its bits differ from CPU to CPU as they do
from seed to seed; its P(<|im_end|>) after a post's body differed fourfold between bases. gguf_q4km's check
`learned_to_stop_after_a_post` wants fine-tuning to raise it 1.25x (core/stopping.py). This trains the tiny
recipe (and each --recipe given, as overrides of it) on the sample blog from bases pretrained with several
seeds and prints the gain each reaches, measured as the check measures it, on the adapter in fp32 rather than
the Q4_K_M file the check reads.

    .venv/bin/python -m benchmarks.stop_margin --seeds 42 1 2 --recipe '{"num_train_epochs": 4, "learning_rate": 1e-3}'
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from benchmarks import measure


def run(seeds: list[int], recipes: list[dict], work: Path, pretrain_steps: int | None = None) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from blogtune_assets.core import sft
    from blogtune_assets.core.tokenizer_source import tiny_tokenizer_dir
    from blogtune_assets.core.chat_tokens import ChatEncoder
    from blogtune_assets.core.cleaning import clean_posts
    from blogtune_assets.core.device import Device
    from blogtune_assets.core.jekyll import scan_site
    from blogtune_assets.core.merge import hf_stop_stats
    from blogtune_assets.core.profiles import SAMPLE_BLOG, get_profile
    from blogtune_assets.core.stopping import end_of_body_prefixes, learned_to_stop
    from blogtune_assets.core.tiny_model import PretrainSettings, build_tiny_model
    from blogtune_assets.core.train import train_lora

    tiny = get_profile("tiny").train
    dataset = work / "dataset"
    dataset.mkdir()
    sft.write_split(dataset, sft.build_examples(clean_posts(scan_site(SAMPLE_BLOG).posts).kept))
    conversations = sft.stop_conversations(sft.read_jsonl(dataset / "eval.jsonl"), sft.read_jsonl(dataset / "train.jsonl"))
    rows = []
    for seed in seeds:
        base = work / f"base_{seed}"
        tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir(log=lambda line: None))
        pretraining = PretrainSettings(seed=seed, **({"steps": pretrain_steps} if pretrain_steps else {}))
        build_tiny_model(SAMPLE_BLOG, base, tokenizer, settings=pretraining, log=lambda line: None)
        encoder = ChatEncoder(tokenizer.backend_tokenizer)
        prefixes = end_of_body_prefixes(encoder, conversations, tiny.max_length)
        before = hf_stop_stats(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval(), prefixes, encoder.im_end_id)
        for i, recipe in enumerate(recipes):
            out = work / f"adapter_{seed}_{i}"
            started = time.perf_counter()
            metrics = train_lora(base, dataset, out / "ckpt", out / "adapter", dataclasses.replace(tiny, **recipe), Device("cpu"), emit=lambda *_: None).metrics
            wall_s = time.perf_counter() - started
            tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), out / "adapter").eval()
            after = hf_stop_stats(tuned, prefixes, encoder.im_end_id)
            rows.append({
                "seed": seed,
                "recipe": json.dumps(recipe) if recipe else "tiny profile",  # overrides of the tiny profile
                "steps": metrics["steps"],
                "p_stop_base": round(before.geometric_mean_probability, 4),
                "p_stop_tuned": round(after.geometric_mean_probability, 4),
                "gain": round(after.geometric_mean_probability / before.geometric_mean_probability, 3),
                "passes": learned_to_stop(after, before),
                "eval_loss_base": round(metrics["base_eval_loss"], 4),
                "eval_loss": round(metrics["eval_loss"], 4),
                "wall_s": round(wall_s, 1),
            })  # fmt: skip
    return {"tiny_recipe": dataclasses.asdict(tiny), "rows": rows}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2], help="the tiny base's pretraining seeds")
    parser.add_argument("--recipe", type=json.loads, action="append", default=[], help="TrainSettings overrides, as JSON")
    parser.add_argument("--max-steps", type=int, default=None, help="cap every recipe at this many steps (smoke tests)")
    parser.add_argument("--pretrain-steps", type=int, default=None, help="pretrain the bases this many steps (smoke tests)")
    parser.add_argument("--out", type=Path, default=measure.RESULTS)
    args = parser.parse_args(argv)
    recipes = [{**recipe, **({"max_steps": args.max_steps} if args.max_steps else {})} for recipe in [{}, *args.recipe]]
    with tempfile.TemporaryDirectory() as work:
        payload = measure.in_child(run, args.seeds, recipes, Path(work), args.pretrain_steps)
    rows = payload["rows"]
    measure.print_table(list(rows[0]), [list(r.values()) for r in rows])
    print("wrote", measure.write_results(args.out, "stop_margin", payload))
    return payload


if __name__ == "__main__":
    main()

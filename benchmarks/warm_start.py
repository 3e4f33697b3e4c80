"""A new post: warm start from the published adapter against a full retrain on the same final posts.

On the tiny profile, the adapter is first trained in full on the sample blog (the parent). Then 1, and
separately 10, new posts (from the synthetic blog's generator) join the train split; each is learned twice,
by a warm start from the parent (core/warm_start.py, as lora_adapter runs it) and by a full retrain from the
base. Both report optimizer steps, wall time, the fixed eval split's loss, and the new posts' own loss before
and after. The last table extrapolates a warm start's cost to the reference scale from token counts.

    .venv/bin/python -m benchmarks.warm_start --new-posts 1 10
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks import measure

# The reference run: 2 epochs over 25.1 M tokens in 10 h 52 min on one RTX 4070 (README), 1,169 tokens an
# example, 16 a step, 200 eval posts.
REFERENCE = {"tokens": 25.1e6, "epochs": 2, "seconds_rtx_4070": 10 * 3600 + 52 * 60, "tokens_per_example": 1169, "eval_posts": 200}


def new_conversations(count: int, work: Path) -> list[dict]:
    """`count` posts the sample blog does not have, from the synthetic generator, as sft_dataset writes them."""
    from benchmarks.synthetic_blog import write_blog
    from blogtune_assets.core import sft
    from blogtune_assets.core.cleaning import clean_posts
    from blogtune_assets.core.jekyll import scan_site

    write_blog(work / "new_posts", count * 3, seed=7)  # some are drawn too short to keep
    kept = sft.build_examples(clean_posts(scan_site(work / "new_posts").posts).kept)
    rows = kept.head(count).select("title", "body").rows()
    assert len(rows) == count, f"the generator kept {len(rows)} of {count * 3} posts"
    return [{"conversations": [{"role": "user", "content": t}, {"role": "assistant", "content": b}]} for t, b in rows]


def _train(base: Path, dataset: Path, out: Path, settings, parent: Path | None) -> dict:
    from blogtune_assets.core.device import Device
    from blogtune_assets.core.train import train_lora

    started = time.perf_counter()
    result = train_lora(base, dataset, out / "ckpt", out / "adapter", settings, Device("cpu"), emit=lambda line: None, parent_adapter=parent)
    return {**result.metrics, "wall_s": round(time.perf_counter() - started, 1)}


def _row(mode: str, new: int, metrics: dict) -> dict:
    keys = ("steps", "wall_s", "train_tokens", "eval_loss", "base_eval_loss", "new_examples_loss_before", "new_examples_loss_after")
    return {"mode": mode, "new_posts": new, **{k: metrics.get(k) for k in keys}}


def run(new_counts: list[int], work: Path, full_steps: int | None) -> dict:
    from blogtune_assets.core import sft, warm_start
    from blogtune_assets.core.base_model import resolve_base
    from blogtune_assets.core.cleaning import clean_posts
    from blogtune_assets.core.jekyll import scan_site
    from blogtune_assets.core.manifest import read_manifest
    from blogtune_assets.core.profiles import SAMPLE_BLOG, get_profile
    from blogtune_assets.core.warm_start import NEW_SPLIT, Lineage, plan_warm_start, write_warm_split

    profile = get_profile("tiny")
    # --full-steps shortens the full runs (the test's smoke run); a warm start's steps follow from its data.
    settings = dataclasses.replace(profile.train, max_steps=full_steps) if full_steps else profile.train
    resolve_base(profile, work / "base", log=lambda line: None)
    base = Path(read_manifest(work / "base")["train_base"]["path"])
    sample = work / "sample_dataset"
    sample.mkdir()
    sft.write_split(sample, sft.build_examples(clean_posts(scan_site(SAMPLE_BLOG).posts).kept))

    parent = work / "parent"
    parent_metrics = _train(base, sample, parent, settings, None)
    identity = warm_start.adapter_identity(read_manifest(work / "base"), settings)
    Lineage("full", "", identity, sorted(warm_start.train_example_keys(sample)), parent_metrics["steps"]).write(parent / "adapter")
    rows = [_row("parent (full, sample blog)", 0, parent_metrics)]
    for count in new_counts:
        posts = new_conversations(count, work / f"gen{count}")
        final = work / f"dataset{count}"
        shutil.copytree(sample, final)
        with open(final / "train.jsonl", "a", encoding="utf-8") as train:
            train.writelines(json.dumps(p, ensure_ascii=False) + "\n" for p in posts)
        plan = plan_warm_start(parent / "adapter", final, settings)
        warm = _train(base, write_warm_split(plan, final, work / f"warm_split{count}"), work / f"warm{count}", warm_start.warm_settings(settings), parent / "adapter")
        # The full retrain measures the same new posts (before: the base; after: the retrained adapter).
        shutil.copyfile(work / f"warm_split{count}" / NEW_SPLIT, final / NEW_SPLIT)
        full = _train(base, final, work / f"full{count}", settings, None)
        verdict = warm_start.guard(warm, settings.forgetting_tolerance)
        rows += [
            {**_row("warm", count, warm), "replay": len(plan.replay), "guard": verdict.passed},
            _row("full", count, full),
        ]
    return {"settings": dataclasses.asdict(settings), "rows": rows}


def extrapolate(settings) -> list[dict]:
    """A warm start at the reference scale from token counts: (1 + replay) examples a new post, warm_epochs
    passes, at the reference run's own tokens/s; plus the eval split measured before and after (a forward pass,
    about a third of a training step's compute per token). An H200 is not measured: none was lent."""
    tokens_per_s = REFERENCE["tokens"] * REFERENCE["epochs"] / REFERENCE["seconds_rtx_4070"]
    full_steps = math.ceil(REFERENCE["tokens"] / REFERENCE["tokens_per_example"] / settings.effective_batch) * REFERENCE["epochs"]
    out = []
    for new in (1, 10, 100):
        examples = math.ceil(new * (1 + settings.replay_ratio))
        steps = math.ceil(settings.warm_epochs * examples / settings.effective_batch)
        train_s = settings.warm_epochs * examples * REFERENCE["tokens_per_example"] / tokens_per_s
        eval_s = 2 * REFERENCE["eval_posts"] * REFERENCE["tokens_per_example"] / (3 * tokens_per_s)
        out.append({"new_posts": new, "warm_steps": steps, "full_steps": full_steps, "step_share": round(steps / full_steps, 5),
                    "train_min_rtx_4070": round(train_s / 60, 2), "eval_min_rtx_4070": round(eval_s / 60, 2)})  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> dict:
    from blogtune_assets.core.profiles import get_profile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-posts", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--full-steps", type=int, default=None, help="cap full runs at this many steps (smoke tests)")
    parser.add_argument("--out", type=Path, default=measure.RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        payload = measure.in_child(run, args.new_posts, Path(work), args.full_steps)
    rows = payload["rows"]
    full_steps = {r["new_posts"]: r["steps"] for r in rows if r["mode"] == "full"}
    full_eval = {r["new_posts"]: r["eval_loss"] for r in rows if r["mode"] == "full"}
    for r in rows:
        if r["mode"] == "warm":
            r["steps_vs_full"] = round(r["steps"] / full_steps[r["new_posts"]], 4)
            r["eval_loss_vs_full"] = round(r["eval_loss"] / full_eval[r["new_posts"]] - 1, 4)
    payload["reference_scale"] = extrapolate(get_profile("qwen3-4b").train)
    measure.print_table(
        ["mode", "new posts", "steps", "steps ÷ full", "wall s", "eval loss", "vs full", "new posts' loss before", "after"],
        [[r["mode"], r["new_posts"], r["steps"], r.get("steps_vs_full", ""), r["wall_s"], r["eval_loss"], r.get("eval_loss_vs_full", ""),
          r["new_examples_loss_before"], r["new_examples_loss_after"]] for r in rows],
    )  # fmt: skip
    measure.print_table(list(payload["reference_scale"][0]), [list(r.values()) for r in payload["reference_scale"]])
    print("wrote", measure.write_results(args.out, "warm_start", payload))
    return payload


if __name__ == "__main__":
    main()

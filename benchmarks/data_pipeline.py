"""raw → cleaned → dataset at the reference run's scale, against the reference project's way.

blogtune runs the functions the assets call (scan_site, clean_posts, build_examples,
count_tokens with Qwen3's tokenizer, as the qwen3 profiles count, the parquet and JSONL the assets write);
the baseline is benchmarks/baseline.py. Each build runs in a fresh process (peak RSS is
its own). The incremental rebuild adds one new post and passes the previous results
(previous=) to every stage, then is checked equal to a from-scratch build.

    .venv/bin/python -m benchmarks.data_pipeline --sizes 1000 5000 21434 --repeats 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from benchmarks import measure
from benchmarks.synthetic_blog import REFERENCE, write_blog

MAX_LENGTH = 4096  # the reference run's, for truncation accounting


@dataclass
class Build:
    scan: object
    cleaned: object
    examples: pl.DataFrame
    out: Path  # where its artifacts are, sharded as the assets write them (core/shards.py)


def blogtune_build(blog: Path, encoder, out: Path, previous: Build | None = None) -> tuple[Build, dict]:
    from blogtune_assets.core import sft
    from blogtune_assets.core.cleaning import clean_posts
    from blogtune_assets.core.jekyll import scan_site
    from blogtune_assets.core.shards import write_frame

    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if previous:
        scan = scan_site(blog, previous=previous.scan.posts, previous_stats=previous.scan.stats)
    else:
        scan = scan_site(blog)
    scanned = time.perf_counter()
    cleaned = clean_posts(scan.posts, previous=previous.cleaned.kept if previous else None)
    clean_done = time.perf_counter()
    examples = sft.build_examples(cleaned.kept, previous=previous.examples if previous else None)
    earlier = dict(zip(previous.examples["example_key"], previous.examples["tokens"])) if previous else None
    tokens_started = time.perf_counter()
    stats = sft.count_tokens(encoder, examples, MAX_LENGTH, previous=earlier)
    examples = examples.with_columns(pl.Series("tokens", stats.tokens, dtype=pl.Int64))
    dataset_done = time.perf_counter()
    write_frame(scan.posts, out / "posts", "path", previous=(previous.scan.posts, previous.out / "posts") if previous else None)
    write_frame(cleaned.kept, out / "cleaned", "path", previous=(previous.cleaned.kept, previous.out / "cleaned") if previous else None)
    sft.write_split(out, examples, previous=(previous.examples, previous.out / sft.EXAMPLES) if previous else None)
    finished = time.perf_counter()
    timings = {
        "scan_s": scanned - started,
        "clean_s": clean_done - scanned,
        "dataset_s": dataset_done - clean_done,
        "tokens_s": dataset_done - tokens_started,
        "write_s": finished - dataset_done,
        "total_s": finished - started,
        "posts": scan.posts.height,
        "kept": cleaned.kept.height,
        "dropped": cleaned.dropped.height,
        "tokens": stats.total,
        "tokens_lost_to_truncation": stats.lost_to_truncation,
        "examples_truncated": stats.truncated_examples,
    }
    return Build(scan, cleaned, examples, out), timings


def _load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def _encoder(folder: Path):
    """What sft_dataset counts with: the fast tokenizer from tokenizer.json, without transformers."""
    from tokenizers import Tokenizer

    from blogtune_assets.core.chat_tokens import ChatEncoder

    return ChatEncoder(Tokenizer.from_file(str(folder / "tokenizer.json")))


def run_blogtune(blog: Path, tokenizer_dir: Path, out: Path) -> dict:
    return blogtune_build(blog, _encoder(tokenizer_dir), out)[1]


def run_baseline(blog: Path, tokenizer_dir: Path, out: Path) -> dict:
    from benchmarks.baseline import build_dataset

    out.mkdir(parents=True, exist_ok=True)
    result = build_dataset(blog, out / "dataset.jsonl", _load_tokenizer(tokenizer_dir))
    return {**result, "total_s": result["text_s"] + result["tokens_s"]}


def run_incremental(blog: Path, new_post: Path, tokenizer_dir: Path, out: Path, repeats: int) -> dict:
    """Full build, one post arrives, rebuild with previous=; the result must equal a fresh build."""
    encoder = _encoder(tokenizer_dir)
    before, _ = blogtune_build(blog, encoder, out / "before")
    arrived = blog / new_post.relative_to(new_post.parents[2])
    new_post.rename(arrived)
    runs = [blogtune_build(blog, encoder, out / f"incremental-{r}", previous=before) for r in range(repeats)]
    incremental, _ = runs[0]
    fresh, full = blogtune_build(blog, encoder, out / "fresh")
    arrived.rename(new_post)
    identical = (
        same(incremental.scan.posts, fresh.scan.posts)
        and same(incremental.cleaned.kept, fresh.cleaned.kept)
        and same(incremental.cleaned.dropped, fresh.cleaned.dropped)
        and same(incremental.examples, fresh.examples)
        and written_equal(incremental.out, fresh.out)
    )
    timing = measure.median_of([t for _, t in runs])
    return {**{f"incremental_{k}": v for k, v in timing.items()}, "full_after_s": full["total_s"], "identical_to_full": identical}


def same(one: pl.DataFrame, other: pl.DataFrame) -> bool:
    """Equal values of equal types (DataFrame.equals alone ignores the types)."""
    return one.schema == other.schema and one.equals(other)


def written_equal(one: Path, other: Path) -> bool:
    """The artifacts two builds wrote read back as the same frames, and their JSONL files are the same bytes."""
    from blogtune_assets.core.shards import read_frame

    return all(same(read_frame(one / name), read_frame(other / name)) for name in ("posts", "cleaned", "examples")) and all(
        (one / name).read_bytes() == (other / name).read_bytes() for name in ("train.jsonl", "eval.jsonl")
    )


def hold_out_last_post(blog: Path, index: int, holding: Path) -> Path:
    """write_blog(n + 1) writes the same first n posts as write_blog(n); post n is the one that arrives later."""
    [last] = (blog / "_posts").glob(f"*/*-{index}-*.md")
    kept = holding / last.relative_to(blog)
    kept.parent.mkdir(parents=True, exist_ok=True)
    return last.rename(kept)


def bench_size(n: int, work: Path, tokenizer_dir: Path, repeats: int, seed: int) -> dict:
    blog = work / f"blog-{n}"
    write_blog(blog, n + 1, seed=seed)
    new_post = hold_out_last_post(blog, n, work / f"arriving-{n}")
    corpus_bytes = sum(p.stat().st_size for p in (blog / "_posts").rglob("*.md"))
    ours, theirs = [], []
    for r in range(repeats):
        ours.append(measure.in_child(run_blogtune, blog, tokenizer_dir, work / f"out-{n}-{r}"))
        theirs.append(measure.in_child(run_baseline, blog, tokenizer_dir, work / f"base-{n}-{r}"))
    incremental = measure.in_child(run_incremental, blog, new_post, tokenizer_dir, work / f"inc-{n}", repeats)
    blogtune, baseline = measure.median_of(ours), measure.median_of(theirs)
    text_s = blogtune["total_s"] - blogtune["tokens_s"]
    return {
        "posts": n,
        "corpus_mb": round(corpus_bytes / measure.MB, 2),
        "blogtune": blogtune,
        "baseline": baseline,
        "incremental": incremental,
        "posts_per_s": n / blogtune["total_s"],
        "mb_per_s": corpus_bytes / measure.MB / blogtune["total_s"],
        "speedup_vs_baseline": baseline["total_s"] / blogtune["total_s"],
        "speedup_vs_baseline_without_tokens": baseline["text_s"] / text_s,
        "incremental_share_of_full": incremental["incremental_total_s"] / blogtune["total_s"],
        "mean_tokens_per_example": blogtune["tokens"] / max(blogtune["kept"], 1),
    }


def plot(results: list[dict], out: Path) -> Path:
    fig, axes = measure.new_figure(2)
    sizes = [r["posts"] for r in results]
    left, right = axes[0]
    for label, key in (("blogtune", "blogtune"), ("baseline", "baseline")):
        left.plot(sizes, [r[key]["total_s"] for r in results], "o-", label=f"{label} (with tokens)")
    left.plot(sizes, [r["blogtune"]["total_s"] - r["blogtune"]["tokens_s"] for r in results], "o--", label="blogtune, no tokens")
    left.plot(sizes, [r["baseline"]["text_s"] for r in results], "o--", label="baseline, no tokens")
    left.plot(sizes, [r["incremental"]["incremental_total_s"] for r in results], "s-", label="blogtune incremental (+1 post)")
    left.set(xlabel="posts", ylabel="wall seconds (median)", title="raw → cleaned → dataset")
    left.legend(fontsize=7)
    stages = ["scan_s", "clean_s", "tokens_s", "write_s"]
    bottom = [0.0] * len(results)
    for stage in stages:
        values = [r["blogtune"][stage] for r in results]
        right.bar([str(s) for s in sizes], values, bottom=bottom, label=stage.removesuffix("_s"))
        bottom = [b + v for b, v in zip(bottom, values)]
    right.set(xlabel="posts", ylabel="seconds", title="blogtune by stage")
    right.legend(fontsize=7)
    return measure.save_figure(fig, out, "data_pipeline")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, REFERENCE["posts"]])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=measure.RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="blogtune-bench-") as tmp:
        work = Path(tmp)
        # Both sides count with the reference run's tokenizer, built offline. Imported here: a spawned child
        # imports this module, and trl (which builds it) is no part of the data half's memory.
        from blogtune_assets.core.qwen3_tokenizer import qwen3_tokenizer_dir

        tokenizer_dir = qwen3_tokenizer_dir()
        results = []
        for n in args.sizes:
            results.append(bench_size(n, work, tokenizer_dir, args.repeats, args.seed))
            # Written after every size, so a run cut short keeps what it measured.
            payload = {"max_length": MAX_LENGTH, "repeats": args.repeats, "seed": args.seed, "sizes": results}
            measure.write_results(args.out, "data_pipeline", payload)
    measure.print_table(
        ["posts", "MB", "blogtune s", "posts/s", "MB/s", "peak MB", "baseline s", "speedup", "no-tokens speedup", "+1 post s", "+1 share"],
        [
            [
                r["posts"], r["corpus_mb"], r["blogtune"]["total_s"], r["posts_per_s"], r["mb_per_s"], r["blogtune"]["peak_rss_mb"],
                r["baseline"]["total_s"], r["speedup_vs_baseline"], r["speedup_vs_baseline_without_tokens"],
                r["incremental"]["incremental_total_s"], r["incremental_share_of_full"],
            ]
            for r in results
        ],
    )
    print("wrote", args.out / "data_pipeline.json", plot(results, args.out))
    return payload


if __name__ == "__main__":
    main()

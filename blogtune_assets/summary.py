"""The demo's last screen: what was built and proven, read in ten seconds. `python -m blogtune_assets.summary`.

Every figure comes from the Dagster instance (DAGSTER_HOME): the metadata of each asset's latest
materialization and the latest evaluation of each check, the same values the UI shows.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from blogtune_assets.core.artifacts import CURRENT
from blogtune_assets.core.gpu_cost import REFERENCE_TOKENS_PER_S
from blogtune_assets.definitions import all_assets, all_checks
from blogtune_assets.resources import from_env

SAMPLE_CHARS = 400
# What the embedded profiles are, for a person who has just watched one run.
STAND_INS = {
    "tiny": "the embedded tiny profile: a {parameters:,}-parameter stand-in pretrained on the sample blog's "
    "{pretrain_posts} train posts. Its text is not meant to be read; the run proves the pipeline end to end.",
    "qwen3-shape": "the qwen3-shape profile: Qwen3-4B's tokenizer and geometry at {parameters:,} parameters, "
    "pretrained on {pretrain_posts} posts. It proves the real vocabulary's path, not writing.",
}
REAL_RUN = (
    "The real model, on a machine with an NVIDIA GPU of 12 GB or more:\n"
    "  BLOGTUNE_PROFILE=qwen3-4b BLOGTUNE_BLOG_DIR=~/your-blog make demo\n"
    "What your blog will cost, measured here first (sft_dataset's gpu_hours_estimate, in Qwen3 tokens):\n"
    "  BLOGTUNE_PROFILE=qwen3-4b BLOGTUNE_BLOG_DIR=~/your-blog .venv/bin/dagster asset materialize \\\n"
    "    -m blogtune_assets.definitions --select raw_posts,cleaned_posts,sft_dataset\n"
    "The reference blog (21,434 posts, 25.1 M tokens) trained 2 epochs in 10 h 52 min on one RTX 4070 "
    f"({REFERENCE_TOKENS_PER_S:,.0f} tokens/s)."
)


def latest_metadata(instance: dg.DagsterInstance, asset: str) -> dict | None:
    """The metadata of the asset's latest materialization, as values; None if it has none."""
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    if event is None:
        return None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def check_verdicts(instance: dg.DagsterInstance) -> dict[str, bool | None]:
    """Each check's latest verdict; None where it has not run."""
    verdicts = {}
    for check in all_checks:
        for key in check.check_keys:
            record = instance.get_latest_asset_check_evaluation_record(key)
            evaluation = record.event.asset_check_evaluation if record and record.event else None
            verdicts[key.name] = evaluation.passed if evaluation else None
    return verdicts


def _sample(report: dict) -> list[str]:
    if not report.get("samples"):
        return []
    sample = report["samples"][0]
    ending = (
        f"it ended at <|im_end|> after {sample['tokens']:,} tokens"
        if sample["finish_reason"] == "stop"
        else f"cut: no <|im_end|> within {sample['tokens']:,} tokens"
    )
    text = sample["text"][:SAMPLE_CHARS] + ("…" if len(sample["text"]) > SAMPLE_CHARS else "")
    return [f"A sample, drawn as the Modelfile samples ({ending}):", f"  # {sample['title']}", *[f"  {line}" for line in text.splitlines()]]


def render(instance: dg.DagsterInstance, store) -> str:
    meta = {asset.key.path[-1]: latest_metadata(instance, asset.key.path[-1]) for asset in all_assets}
    missing = [name for name, m in meta.items() if m is None]
    if missing:
        return f"Not materialized yet: {', '.join(missing)}. Run `make demo` (it materializes every asset)."
    raw, cleaned, data, base = meta["raw_posts"], meta["cleaned_posts"], meta["sft_dataset"], meta["base_model"]
    lora, export = meta["lora_adapter"], meta["gguf_q4km"]
    verdicts = check_verdicts(instance)
    failed = [name for name, passed in verdicts.items() if passed is not True]
    published = Path(str(export["path"]))
    # Through the `current` link, which stays valid when a newer version is published and this one pruned.
    q4 = store.asset_dir("gguf_q4km") / CURRENT / published.name
    lines = [
        f"blogtune built your model with {STAND_INS[base['profile']].format(**base)}"
        if base["profile"] in STAND_INS
        else f"blogtune built your model from {base['model_id']} (profile {base['profile']}).",
        "",
        f"Posts      {raw['files_under_posts']} files under _posts/: {raw['posts_read']} read, {raw['files_rejected']} rejected, "
        f"{raw['files_not_posts']} not posts; "
        f"{cleaned['posts_kept']} kept, {cleaned['posts_dropped']} dropped (reasons in raw_posts and cleaned_posts)",
        f"Dataset    {data['train_examples']} train / {data['eval_examples']} eval examples, "
        f"{data['train_tokens']:,} / {data['eval_tokens']:,} tokens, counted with {data['tokenizer']}",
        f"Training   eval loss {lora['base_eval_loss']:.3f} (base) -> {lora['eval_loss']:.3f} (fine-tuned), "
        f"{lora['steps']} steps in {lora['train_runtime_s']:.0f} s on {lora['device']}",
        f"Model      {q4.name}: {export['size_bytes'] / 1e6:.1f} MB, {export['bits_per_weight']:.2f} bits/weight",
        f"Checks     {len(verdicts) - len(failed)}/{len(verdicts)} passed"
        + (f"; not passed: {', '.join(failed)}" if failed else f" ({', '.join(verdicts)})"),
        "",
        "Artifacts (each asset's current version):",
        *[f"  {name:<14} {_current(store, name)}" for name in meta],
        "",
        "Run it:",
        f"  ollama create blogtune -f {q4.parent / 'Modelfile'} && ollama run blogtune \"Trying Rust\"",
        f"  llama-cli -m {q4} --jinja -cnv",
        "",
        *_sample(json.loads((published.parent / "report.json").read_text())),
        "",
        REAL_RUN,
    ]
    return "\n".join(lines)


def _current(store, name: str) -> str:
    folder = store.current_or_none(name)
    return str(folder) if folder else "(no published version)"


def main() -> None:
    with dg.DagsterInstance.get() as instance:
        print(render(instance, from_env()["artifacts"].store))


if __name__ == "__main__":
    main()

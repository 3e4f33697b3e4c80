"""The adapter's README.md: base, data, settings and results in one page."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from blogtune_assets.core.sft import read_jsonl
from blogtune_assets.core.profiles import TrainSettings


def write_model_card(folder: Path, manifest: dict, dataset_dir: Path, settings: TrainSettings, metrics: dict) -> None:
    train_n = len(read_jsonl(dataset_dir / "train.jsonl"))
    eval_n = len(read_jsonl(dataset_dir / "eval.jsonl"))
    base = manifest["train_base"]
    rows = "\n".join(f"| {k} | {v} |" for k, v in dataclasses.asdict(settings).items())
    results = "\n".join(f"| {k} | {v} |" for k, v in metrics.items())
    (folder / "README.md").write_text(
        f"""---
base_model: {base["id"]}
library_name: peft
tags: [blogtune, lora, sft, trl]
---

# blogtune LoRA adapter

A LoRA adapter that writes blog posts from a title, trained by blogtune with trl's
`SFTTrainer` on a Jekyll blog's posts (title → body conversations, loss on the assistant's tokens only).

- **Base**: `{base["id"]}` (revision `{base["revision"]}`); merge base `{manifest["merge_base"]["id"]}`
- **Data**: `{dataset_dir}`: {train_n} training and {eval_n} eval conversations
- **Prompt**: Qwen3's chat template with an empty thinking block; render inference prompts with
  `enable_thinking=False` so they match training.

## Settings

| setting | value |
|---|---|
{rows}

## Results

| metric | value |
|---|---|
{results}
""",
        encoding="utf-8",
    )

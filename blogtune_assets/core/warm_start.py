"""Warm start: the published adapter goes on training on what changed since, with a replay of what it saw.

Every adapter folder holds `lineage.json`: the examples it has learned (through its parents too), what it
continued from, and its identity, which a warm start may not change: the base with its tokenizer, the LoRA
shape and the length it learned to read. A warm start trains on the train split's examples the parent has not
learned (new posts, and edited ones, whose new text is a new example) plus a seeded replay of ones it has, on a
schedule of its own. What the parent learned from a deleted post stays in it: only a full retrain removes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from blogtune_assets.core.profiles import TrainSettings
from blogtune_assets.core.sft import example_key, read_jsonl

LINEAGE = "lineage.json"
# What an adapter *is*: its LoRA shape and the length it learned to read. The rate, epochs and warmup are a warm
# start's own schedule, so a warm start may set them.
IDENTITY_FIELDS = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "max_length")
# Beside train.jsonl and eval.jsonl in a warm start's split: the new examples alone, whose loss is measured
# before and after (train_lora).
NEW_SPLIT = "new.jsonl"


def adapter_identity(manifest: dict, settings: TrainSettings) -> dict:
    """The base (id, revision, build key), its tokenizer's bytes, and the recipe's IDENTITY_FIELDS, as JSON."""
    train_base = Path(manifest["train_base"]["path"])
    tokenizer = hashlib.sha256()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if (train_base / name).exists():
            tokenizer.update((train_base / name).read_bytes())
    identity = {
        "base": {key: manifest["train_base"].get(key) for key in ("id", "revision")} | {"build_key": manifest.get("build_key")},
        "tokenizer_sha256": tokenizer.hexdigest(),
        "recipe": {name: getattr(settings, name) for name in IDENTITY_FIELDS},
    }
    return json.loads(json.dumps(identity))  # tuples as lists, as read back from lineage.json


@dataclass(frozen=True)
class Lineage:
    training_mode: str  # "full" or "warm"
    parent_adapter: str  # the version it continued from; "" after a full retrain
    identity: dict
    learned_examples: list[str]  # example keys, sorted
    cumulative_steps: int  # optimizer steps from the base to this adapter, its parents' included

    def write(self, folder: Path) -> None:
        (folder / LINEAGE).write_text(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def read(cls, folder: Path) -> Lineage:
        return cls(**json.loads((folder / LINEAGE).read_text()))


def train_example_keys(dataset_dir: Path) -> list[str]:
    return [_key(row) for row in read_jsonl(dataset_dir / "train.jsonl")]


def _key(row: dict) -> str:
    user, assistant = row["conversations"]
    return example_key(user["content"], assistant["content"])


def why_not_warm(parent: Path | None, identity: dict) -> str | None:
    """Why a warm start cannot continue `parent`, or None when it can."""
    if parent is None:
        return "no adapter is published yet to continue"
    if not (parent / LINEAGE).exists():
        return f"the published adapter {parent.name} has no {LINEAGE} (it was trained before warm starts)"
    was = Lineage.read(parent).identity
    if was["base"] != identity["base"]:
        return f"the base model changed: {was['base']} -> {identity['base']}"
    if was["tokenizer_sha256"] != identity["tokenizer_sha256"]:
        return "the base's tokenizer changed"
    changed = [f"{k} {was['recipe'][k]} -> {v}" for k, v in identity["recipe"].items() if was["recipe"].get(k) != v]
    return f"the recipe changed: {', '.join(changed)}" if changed else None


@dataclass(frozen=True)
class WarmPlan:
    parent: Path
    lineage: Lineage
    new: list[dict]  # train examples the parent has not learned
    replay: list[dict]  # train examples it has, drawn with the seed
    forgotten: int  # examples it learned that the train split no longer has (deleted or edited posts)

    def learned_after(self) -> list[str]:
        return sorted(set(self.lineage.learned_examples) | {_key(row) for row in self.new})


def plan_warm_start(parent: Path, dataset_dir: Path, settings: TrainSettings) -> WarmPlan:
    lineage = Lineage.read(parent)
    learned = set(lineage.learned_examples)
    rows = read_jsonl(dataset_dir / "train.jsonl")
    keys = [_key(row) for row in rows]
    new = [row for row, key in zip(rows, keys) if key not in learned]
    old = [row for row, key in zip(rows, keys) if key in learned]
    replay = random.Random(settings.seed).sample(old, min(len(old), math.ceil(settings.replay_ratio * len(new))))
    return WarmPlan(parent, lineage, new, replay, forgotten=len(learned - set(keys)))


def write_warm_split(plan: WarmPlan, dataset_dir: Path, out: Path) -> Path:
    """train.jsonl (new, then replay), the dataset's own eval.jsonl, and new.jsonl, in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.jsonl", plan.new + plan.replay), (NEW_SPLIT, plan.new)):
        (out / name).write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    shutil.copyfile(dataset_dir / "eval.jsonl", out / "eval.jsonl")
    return out


def warm_settings(settings: TrainSettings) -> TrainSettings:
    """The recipe on the warm set: warm_epochs passes, whatever step count a profile fixed for full runs."""
    return dataclasses.replace(settings, num_train_epochs=settings.warm_epochs, max_steps=-1)


@dataclass(frozen=True)
class Guard:
    passed: bool
    parent_eval_loss: float
    eval_loss: float
    eval_loss_limit: float
    new_loss_before: float
    new_loss_after: float

    @property
    def reason(self) -> str:
        if self.eval_loss > self.eval_loss_limit:
            return f"eval loss {self.eval_loss:.4f} above the parent's {self.parent_eval_loss:.4f} x (1 + tolerance) = {self.eval_loss_limit:.4f}"
        if self.new_loss_after >= self.new_loss_before:
            return f"the new posts' loss did not fall ({self.new_loss_before:.4f} -> {self.new_loss_after:.4f})"
        return "kept the eval loss and learned the new posts"


def guard(metrics: dict, tolerance: float) -> Guard:
    """The warm adapter against its parent: eval loss (both measured by the warm run, before and after) within
    the tolerance, and the new posts' own loss lower."""
    parent, now = metrics["base_eval_loss"], metrics["eval_loss"]
    before, after = metrics["new_examples_loss_before"], metrics["new_examples_loss_after"]
    limit = parent * (1 + tolerance)
    return Guard(now <= limit and after < before, parent, now, round(limit, 4), before, after)

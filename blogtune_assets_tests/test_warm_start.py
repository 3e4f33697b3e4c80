"""Warm start: lora_adapter continues the published adapter on new posts, guarded against forgetting."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import dagster as dg
import pytest
import torch
from safetensors.torch import load_file

from blogtune_assets.assets.model import WARM_GUARD, _run_key, base_model, lora_adapter
from blogtune_assets.core.artifacts import ArtifactStore
from blogtune_assets.core.device import Device
from blogtune_assets.core.profiles import get_profile
from blogtune_assets.core.sft import read_jsonl
from blogtune_assets.core.warm_start import LINEAGE, Lineage, guard, plan_warm_start, train_example_keys, why_not_warm
from blogtune_assets.resources import from_env
from blogtune_assets_tests.conftest import LONG_BODY

TINY = get_profile("tiny").train
# The tiny recipe, shortened as the other training tests shorten it; the parent is trained with it in full.
RECIPE = {"max_steps": 4, "save_steps": 4, "logging_steps": 1, "max_length": 256}
# Long enough to move the eval loss clearly off the base's, so "starts where the parent ended" is unmistakable.
PARENT = {"max_steps": 16, "save_steps": 16}
NEW_POST = {
    "conversations": [
        {"role": "user", "content": "Sourdough on a Sunday"},
        {"role": "assistant", "content": "Sourdough starters reward patience. " + LONG_BODY * 3},
    ]
}


def _identity(**recipe) -> dict:
    return {"base": {"id": "b", "revision": "r", "build_key": "k"}, "tokenizer_sha256": "t", "recipe": {"lora_r": 32, **recipe}}


def _with_lineage(folder: Path, learned: list[str], identity: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Lineage("full", "", identity or _identity(), learned, 10).write(folder)
    return folder


def test_what_forces_a_full_retrain_is_named(tmp_path):
    parent = _with_lineage(tmp_path / "parent", [])
    assert why_not_warm(None, _identity()) == "no adapter is published yet to continue"
    assert "has no lineage.json" in why_not_warm(tmp_path, _identity())
    assert why_not_warm(parent, _identity()) is None
    assert why_not_warm(parent, {**_identity(), "base": {"id": "other"}}).startswith("the base model changed")
    assert why_not_warm(parent, {**_identity(), "tokenizer_sha256": "u"}) == "the base's tokenizer changed"
    assert why_not_warm(parent, _identity(lora_r=16)) == "the recipe changed: lora_r 32 -> 16"


def test_the_plan_takes_new_examples_and_a_seeded_replay_of_learned_ones(tmp_path, sample_dataset):
    rows = read_jsonl(sample_dataset / "train.jsonl")
    keys = train_example_keys(sample_dataset)
    parent = _with_lineage(tmp_path / "parent", keys[2:] + ["a-deleted-post"])
    plan = plan_warm_start(parent, sample_dataset, TINY)
    assert plan.new == rows[:2] and plan.forgotten == 1
    assert len(plan.replay) == math.ceil(TINY.replay_ratio * 2) and all(r in rows[2:] for r in plan.replay)
    assert plan.replay == plan_warm_start(parent, sample_dataset, TINY).replay  # seeded
    assert plan.learned_after() == sorted(set(keys) | {"a-deleted-post"})


@pytest.mark.parametrize(
    "eval_loss, new_after, passed",
    [(2.04, 1.0, True), (2.05, 1.0, False), (1.9, 1.6, False), (float("nan"), 1.0, False)],
)
def test_the_guard_holds_the_eval_loss_to_the_parents_and_wants_the_new_posts_learned(eval_loss, new_after, passed):
    metrics = {"base_eval_loss": 2.0, "eval_loss": eval_loss, "new_examples_loss_before": 1.5, "new_examples_loss_after": new_after}
    assert guard(metrics, tolerance=0.02).passed is passed


def test_the_run_key_names_the_parent(tmp_path):
    key = lambda parent: _run_key(tmp_path / "d", tmp_path / "b", TINY, Device("cpu"), parent)  # noqa: E731
    assert key("v1") != key("v2") != key("")


@pytest.fixture(scope="module")
def published_parent(tmp_path_factory, tiny_base_home, sample_dataset):
    """A home whose lora_adapter was trained in full on the sample dataset (v1), and a dataset v2 with one new post."""
    home = tmp_path_factory.mktemp("warm_home")
    shutil.copytree(tiny_base_home / "base_model", home / "base_model", symlinks=True)
    datasets = home / "sft_dataset"
    shutil.copytree(sample_dataset, datasets / "v1")
    (datasets / "current").symlink_to("v1")
    _train(home, PARENT, "full")
    shutil.copytree(datasets / "v1", datasets / "v2")
    with open(datasets / "v2" / "train.jsonl", "a", encoding="utf-8") as train:
        train.write(json.dumps(NEW_POST) + "\n")
    (datasets / "current").unlink()
    (datasets / "current").symlink_to("v2")
    return home


def _train(home: Path, recipe: dict, mode: str, check_passes: bool = True, env: dict | None = None) -> dict:
    mp = pytest.MonkeyPatch()
    for name, value in {"BLOGTUNE_HOME": str(home), **(env or {})}.items():
        mp.setenv(name, value)
    try:
        result = dg.materialize(
            [dg.AssetSpec("sft_dataset"), base_model, lora_adapter],
            selection=[lora_adapter],
            resources=from_env(),
            run_config={"ops": {"lora_adapter": {"config": {**RECIPE, **recipe, "training_mode": mode}}}},
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
    finally:
        mp.undo()
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == WARM_GUARD and check.passed is check_passes, check.metadata
    return {k: v.value for k, v in result.asset_materializations_for_node("lora_adapter")[0].metadata.items()}


def _lora_b(adapter: Path) -> torch.Tensor:
    weights = load_file(adapter / "adapter_model.safetensors")
    return torch.cat([weights[name].flatten() for name in sorted(weights) if "lora_B" in name])


def _copy(home: Path, tmp_path: Path) -> Path:
    shutil.copytree(home, tmp_path / "home", symlinks=True)
    return tmp_path / "home"


def test_a_warm_start_continues_the_parent_on_the_new_post_and_names_it(published_parent, tmp_path):
    home = _copy(published_parent, tmp_path)
    store = ArtifactStore(home)
    parent = store.current("lora_adapter")
    parent_metrics = json.loads((parent / "metrics.json").read_text())

    meta = _train(home, {}, "warm")

    assert meta["training_mode"] == "warm" and meta["parent_adapter"] == parent.name
    assert meta["examples_added_since_parent"] == 1 and meta["replay_examples"] == math.ceil(TINY.replay_ratio)
    # One pass over 1 new + 3 replayed examples, 2 a step: its own short schedule, not the parent's 4 steps.
    assert meta["steps"] == 2 and meta["cumulative_steps"] == parent_metrics["steps"] + 2
    # Before its first step the warm model *is* the parent: its eval loss, on the same eval split, is the
    # parent's final one. And its LoRA B matrices, zero in a fresh LoRA, are the parent's plus two small steps.
    assert meta["base_eval_loss"] == pytest.approx(parent_metrics["eval_loss"], abs=2e-4)
    warm_b, parent_b = _lora_b(store.current("lora_adapter")), _lora_b(parent)
    assert torch.linalg.norm(warm_b - parent_b) < 0.25 * torch.linalg.norm(parent_b)
    assert meta["new_examples_loss_after"] < meta["new_examples_loss_before"]
    published = store.current("lora_adapter")
    assert published != parent
    lineage = Lineage.read(published)
    assert lineage.parent_adapter == parent.name
    assert len(lineage.learned_examples) == len(Lineage.read(parent).learned_examples) + 1


def test_the_guard_rejects_a_harmful_warm_start_and_the_parent_stays_published(published_parent, tmp_path):
    home = _copy(published_parent, tmp_path)
    store = ArtifactStore(home)
    parent = store.current("lora_adapter")

    meta = _train(home, {"learning_rate": TINY.learning_rate * 100}, "warm", check_passes=False)

    # The output is the parent, described by its own lineage; the candidate's figures are only in the check.
    assert meta["training_mode"] == "unchanged" and meta["kept_because"].startswith("warm start rejected (eval loss")
    assert meta["cumulative_steps"] == Lineage.read(parent).cumulative_steps and "eval_loss" not in meta
    assert meta["parent_adapter"] == Lineage.read(parent).parent_adapter == "" and meta["examples_not_learned_yet"] == 1
    assert store.current("lora_adapter") == parent and meta["path"] == str(parent)
    assert [p.name for p in store.versions("lora_adapter")] == [parent.name]
    assert (store.asset_dir("lora_adapter") / ".rejected").is_dir()


def test_a_recipe_change_forces_a_full_retrain(published_parent, tmp_path):
    home = _copy(published_parent, tmp_path)
    parent = ArtifactStore(home).current("lora_adapter")

    meta = _train(home, {"lora_r": 16, "lora_alpha": 16}, "warm")

    assert meta["training_mode"] == "full" and meta["training_mode_asked"] == "warm"
    assert meta["warm_start_refused"] == "the recipe changed: lora_r 32 -> 16, lora_alpha 32 -> 16"
    assert meta["parent_adapter"] == "" and meta["steps"] == RECIPE["max_steps"]
    assert Lineage.read(ArtifactStore(home).current("lora_adapter")).identity["recipe"]["lora_r"] == 16
    assert (parent / LINEAGE).exists()


def test_a_learned_post_that_is_gone_trains_full_when_removal_was_asked_for(published_parent, tmp_path):
    home = _copy(published_parent, tmp_path)
    train = home / "sft_dataset" / "v2" / "train.jsonl"
    train.write_text("".join(train.read_text(encoding="utf-8").splitlines(keepends=True)[1:]), encoding="utf-8")
    parent = ArtifactStore(home).current("lora_adapter")

    meta = _train(home, {}, "warm", env={"BLOGTUNE_FULL_RETRAIN_ON_DELETE": "true"})

    assert meta["training_mode"] == "full" and meta["training_mode_asked"] == "warm"
    assert meta["warm_start_refused"].startswith(f"examples {parent.name} learned are gone from the train split (1: ")
    assert meta["parent_adapter"] == "" and meta["examples_learned_but_gone"] == 0

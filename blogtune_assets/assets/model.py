"""base_model, lora_adapter, merged_model: the model half of the graph."""

import dataclasses
import hashlib
import json
import shutil
import typing
from pathlib import Path

import dagster as dg
import pydantic

from blogtune_assets.assets.metadata import loss_at_a_glance_md, loss_curve_md, md_table
from blogtune_assets.compute import HEAVY
from blogtune_assets.core.device import Device
from blogtune_assets.core.disk import ensure_free_space, lora_training_bytes, merged_model_bytes
from blogtune_assets.core.manifest import read_manifest
from blogtune_assets.core.memory import estimate_peak_memory
from blogtune_assets.core.model_card import write_model_card
from blogtune_assets.core.sft import read_jsonl, stop_conversations
from blogtune_assets.core.warm_start import (
    Lineage,
    adapter_identity,
    plan_warm_start,
    train_example_keys,
    warm_settings,
    why_not_warm,
    write_warm_split,
)
from blogtune_assets.core.warm_start import guard as warm_guard
from blogtune_assets.core.profiles import TrainSettings
from blogtune_assets.resources import Accelerator, ArtifactHome, ModelProfile, RetrainPolicy
from blogtune_assets.train_process import TrainRequest, launch_command

GROUP = "model"
SIDE_BY_SIDE_TITLES = 3


@dg.asset(group_name=GROUP, kinds={"pytorch", "huggingface"}, code_version="2", **HEAVY)
def base_model(context: dg.AssetExecutionContext, model_profile: ModelProfile, artifacts: ArtifactHome) -> dg.Output[Path]:
    """The profile's base model as local folders (training base and full-precision merge base), with what it is."""
    # Imported here, as in every asset that needs them: the definitions load without transformers or torch.
    from blogtune_assets.core.base_model import embedded_build_key, resolve_base

    profile = model_profile.settings
    store = artifacts.store
    reused = profile.embedded and _current_build_key(store, "base_model") == embedded_build_key(profile)
    if not reused:
        with store.new_version("base_model") as folder:
            resolve_base(
                profile, folder, model_profile.base_model or None, model_profile.merge_base_model or None, log=context.log.info
            )
    path = store.current("base_model")
    manifest = read_manifest(path)
    train, merge = manifest["train_base"], manifest["merge_base"]
    facts = train["facts"]
    return dg.Output(
        path,
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "profile": profile.name,
            "reused_existing_build": reused,
            "model_id": train["id"],
            "revision": train["revision"],
            "merge_model_id": merge["id"],
            "merge_revision": merge["revision"],
            "architecture": facts["architecture"],
            "parameters": facts["parameters"],
            "weights_bytes": facts["weights_bytes"],
            "hidden_size": facts["hidden_size"],
            "num_hidden_layers": facts["num_hidden_layers"],
            "dtype": facts["dtype"],
            "quantization": facts["quantization"],
            "tokenizer": f"{facts['tokenizer_class']} ({facts['tokenizer_size']} tokens, eos {facts['eos_token']} = "
            f"{facts['eos_token_id']}, pad {facts['pad_token']} = {facts['pad_token_id']})",
            "chat_template": dg.MetadataValue.md(f"```jinja\n{facts['chat_template']}\n```"),
            **manifest.get("pretraining", {}),
        },
    )


def _current_build_key(store, asset: str) -> str | None:
    try:
        return read_manifest(store.current(asset)).get("build_key")
    except FileNotFoundError:
        return None


class _TrainOverrides(dg.Config):
    """Run-config overrides of the profile's recipe (TrainSettings, core/profiles.py); unset fields keep the profile's value."""

    # "warm" continues the published adapter on the posts added or changed since (core/warm_start.py); the
    # new-posts sensor asks for it, the weekly schedule and a plain launch train from scratch. A changed
    # base, tokenizer or LoRA shape trains "full" whatever is asked, and says why.
    training_mode: typing.Literal["full", "warm"] = "full"

    def apply(self, settings: TrainSettings) -> TrainSettings:
        overrides = {k: v for k, v in self.model_dump(exclude={"training_mode"}).items() if v is not None}
        return dataclasses.replace(settings, **overrides)


# One optional field per TrainSettings field, so a new setting is added once. Not overridable per run: the LoRA
# targets (a shape, not a knob) and eval_size (sft_dataset's split, which this asset only reads).
_NOT_PER_RUN = ("target_modules", "eval_size")
TrainConfig = pydantic.create_model(
    "TrainConfig",
    __base__=_TrainOverrides,
    **{
        name: (hint | None, None)
        for name, hint in typing.get_type_hints(TrainSettings).items()
        if name not in _NOT_PER_RUN
    },
)


WARM_GUARD = "warm_start_kept_what_it_knew"


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "huggingface"},
    code_version="3",
    check_specs=[
        dg.AssetCheckSpec(
            WARM_GUARD,
            asset="lora_adapter",
            blocking=True,
            description="A warm-started adapter is published only if its eval loss stays within forgetting_tolerance of "
            "its parent's and the new posts' loss falls; otherwise the parent stays published. A full retrain passes.",
        )
    ],
    **HEAVY,
)
def lora_adapter(
    context: dg.AssetExecutionContext,
    config: TrainConfig,
    sft_dataset: Path,
    base_model: Path,
    model_profile: ModelProfile,
    accelerator: Accelerator,
    artifacts: ArtifactHome,
    retrain: RetrainPolicy,
    pipes_subprocess_client: dg.PipesSubprocessClient,
):
    """A LoRA adapter (r=32 on q,k,v,o,gate,up,down) trained with trl's SFTTrainer on the blog's conversations,
    from scratch or, warm-starting, from the published adapter on what changed since."""
    settings = config.apply(model_profile.settings.train)
    device = accelerator.resolve()
    settings.accumulation_per_process(device.num_processes)  # a batch that cannot split fails here, before launch
    manifest = read_manifest(base_model)
    train_base = Path(manifest["train_base"]["path"])
    memory = _estimate_memory(context, train_base, settings, device)
    store = artifacts.store
    identity = adapter_identity(manifest, settings)
    parent = store.current_or_none("lora_adapter")
    refused = why_not_warm(parent, identity) if config.training_mode == "warm" else None
    plan = plan_warm_start(parent, sft_dataset, settings) if config.training_mode == "warm" and not refused else None
    if plan is not None and plan.forgotten and retrain.full_retrain_on_delete:
        # However the warm start was asked for (sensor or launchpad), the person asked for removal to be real.
        refused = (
            f"examples {plan.parent.name} learned are gone from the train split ({plan.forgotten}: deleted or edited posts) "
            "and BLOGTUNE_FULL_RETRAIN_ON_DELETE is set: only a full retrain removes them"
        )
        plan = None
    if plan is not None and not plan.new:
        why = f"no new or changed training posts since {plan.parent.name}: it stays published unchanged"
        yield from _keep_parent(context, plan, why, dg.AssetCheckResult(check_name=WARM_GUARD, passed=True, description=why))
        return
    trains_on = warm_settings(settings) if plan else settings
    # Same data, base, recipe, parent and processes → same folder, so a rerun after a crash resumes there (and only
    # there: a checkpoint's optimizer and data order belong to its number of processes).
    run_key = _run_key(sft_dataset, base_model, trains_on, device, plan.parent.name if plan else "")
    checkpoints = store.asset_dir("lora_adapter") / ".checkpoints" / run_key
    checkpoints.mkdir(parents=True, exist_ok=True)
    ensure_free_space(store.home, lora_training_bytes(train_base, settings.lora_r), "lora_adapter")
    # Trained beside the checkpoints and published only if it is kept, so a rejected warm start is never current.
    candidate = checkpoints / "adapter"
    shutil.rmtree(candidate, ignore_errors=True)
    request = TrainRequest(
        base_dir=str(train_base),
        dataset_dir=str(write_warm_split(plan, sft_dataset, checkpoints / "warm_split") if plan else sft_dataset),
        checkpoint_dir=str(checkpoints),
        out_dir=str(candidate),
        settings=dataclasses.asdict(trains_on),
        device=dataclasses.asdict(device),
        parent_adapter=str(plan.parent) if plan else "",
    )
    # Training runs in its own process(es); its log lines and final metrics come back over Pipes.
    reported = pipes_subprocess_client.run(
        context=context, command=launch_command(request.write(checkpoints / "request.json"), device.num_processes)
    ).get_materialize_result()
    metrics = json.loads((candidate / "metrics.json").read_text())
    log_history = json.loads((candidate / "log_history.json").read_text())
    verdict = warm_guard(metrics, settings.forgetting_tolerance) if plan else None
    if verdict is not None and not verdict.passed:
        # Kept for a look, one at a time; the parent stays published, and the output describes the parent.
        rejected = store.asset_dir("lora_adapter") / ".rejected"
        shutil.rmtree(rejected, ignore_errors=True)
        rejected.mkdir(exist_ok=True)
        candidate.rename(rejected / run_key)
        shutil.rmtree(checkpoints, ignore_errors=True)
        why = f"warm start rejected ({verdict.reason}): {plan.parent.name} stays published, the candidate is in {rejected / run_key}"
        check = dg.AssetCheckResult(
            check_name=WARM_GUARD,
            passed=False,
            description=verdict.reason,
            metadata={
                **dataclasses.asdict(verdict),
                "candidate": dg.MetadataValue.path(str(rejected / run_key)),
                "candidate_loss_at_a_glance": loss_at_a_glance_md(log_history, metrics),
            },
        )
        yield from _keep_parent(context, plan, why, check)
        return
    lineage = Lineage(
        training_mode="warm" if plan else "full",
        parent_adapter=plan.parent.name if plan else "",
        identity=identity,
        learned_examples=plan.learned_after() if plan else sorted(train_example_keys(sft_dataset)),
        cumulative_steps=metrics["steps"] + (plan.lineage.cumulative_steps if plan else 0),
    )
    with store.new_version("lora_adapter") as folder:
        shutil.copytree(candidate, folder, dirs_exist_ok=True)
        shutil.copytree(checkpoints / "runs", folder / "tensorboard", dirs_exist_ok=True)
        lineage.write(folder)
        write_model_card(folder, manifest, sft_dataset, settings, metrics)
    path = store.current("lora_adapter")
    shutil.rmtree(checkpoints, ignore_errors=True)
    yield dg.Output(
        path,
        metadata={
            "loss_at_a_glance": loss_at_a_glance_md(log_history, metrics),  # first: the top of the asset page
            **reported.metadata,
            "path": dg.MetadataValue.path(str(path)),
            **_lineage_metadata(config.training_mode, refused, plan, lineage),
            "eval_loss_vs_base": round(metrics["eval_loss"] - metrics["base_eval_loss"], 4),
            **({"estimated_peak_memory_gb": round(memory.total_gb, 2), "memory_estimate": dg.MetadataValue.json(memory.as_dict())} if memory else {}),
            "settings": dg.MetadataValue.json(dataclasses.asdict(trains_on)),
            "accelerator": dg.MetadataValue.json(device.describe()),
            "loss_curve": loss_curve_md(log_history),
        },
    )
    yield dg.AssetCheckResult(
        check_name=WARM_GUARD,
        passed=True,
        description=verdict.reason if verdict else "a full retrain: nothing to compare with a parent",
        metadata=dataclasses.asdict(verdict) if verdict else {},
    )


def _estimate_memory(context: dg.AssetExecutionContext, train_base: Path, settings: TrainSettings, device: Device):
    try:
        memory = estimate_peak_memory(
            json.loads((train_base / "config.json").read_text()),
            lora_r=settings.lora_r,
            target_modules=settings.target_modules,
            tokens=settings.per_device_train_batch_size * settings.max_length,  # the longest micro-batch there can be
            dtype=device.dtype,
            qlora=device.qlora,
        )
    except KeyError as missing:  # a config without Qwen3's flat fields (a nested text_config): no estimate, still train
        context.log.warning(f"no memory estimate: the base's config.json has no {missing}")
        return None
    context.log.info(f"estimated peak {device.kind} memory per process: {memory.total_gb:.1f} GB {memory.as_dict()}")
    return memory


def _lineage_metadata(asked: str, refused: str | None, plan, lineage: Lineage) -> dict:
    return {
        "training_mode": lineage.training_mode,
        "training_mode_asked": asked,
        **({"warm_start_refused": refused} if refused else {}),
        "parent_adapter": lineage.parent_adapter,
        "examples_added_since_parent": len(plan.new) if plan else 0,
        "replay_examples": len(plan.replay) if plan else 0,
        # Deleted or edited posts the parent learned: still in the adapter until a full retrain removes them.
        "examples_learned_but_gone": plan.forgotten if plan else 0,
        "examples_learned": len(lineage.learned_examples),
        "cumulative_steps": lineage.cumulative_steps,
    }


def _keep_parent(context: dg.AssetExecutionContext, plan, why: str, check: dg.AssetCheckResult):
    """The warm start publishes nothing (nothing new to learn, or its candidate was rejected): the output is the
    parent, described by its own lineage, so the latest materialization never shows figures of an adapter that
    is not published."""
    (context.log.info if check.passed else context.log.warning)(why)
    yield dg.Output(
        plan.parent,
        metadata={
            "path": dg.MetadataValue.path(str(plan.parent)),
            "training_mode": "unchanged",
            "training_mode_asked": "warm",
            "kept_because": why,
            "parent_adapter": plan.lineage.parent_adapter,
            "examples_learned": len(plan.lineage.learned_examples),
            "examples_not_learned_yet": len(plan.new),
            "examples_learned_but_gone": plan.forgotten,
            "cumulative_steps": plan.lineage.cumulative_steps,
        },
    )
    yield check


def _run_key(sft_dataset: Path, base_model: Path, settings: TrainSettings, device: Device, parent: str = "") -> str:
    # What the device changes about a checkpoint (dtype, processes), not which GPU model or torch ran it.
    trains_as = [device.kind, device.dtype, device.num_processes]
    blob = json.dumps([sft_dataset.name, base_model.name, dataclasses.asdict(settings), trains_as, parent], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dg.asset(group_name=GROUP, kinds={"pytorch", "huggingface", "safetensors"}, code_version="2", **HEAVY)
def merged_model(
    context: dg.AssetExecutionContext,
    lora_adapter: Path,
    base_model: Path,
    sft_dataset: Path,
    model_profile: ModelProfile,
    accelerator: Accelerator,
    artifacts: ArtifactHome,
) -> dg.Output[Path]:
    """The adapter merged into the full-precision base (merge_and_unload), saved as safetensors with its tokenizer."""
    from blogtune_assets.core.merge import merge_adapter

    profile = model_profile.settings
    device = accelerator.resolve()
    manifest = read_manifest(base_model)
    all_evals = read_jsonl(sft_dataset / "eval.jsonl")
    evals = all_evals[:SIDE_BY_SIDE_TITLES]
    titles = [e["conversations"][0]["content"] for e in evals]
    ensure_free_space(artifacts.store.home, merged_model_bytes(Path(manifest["merge_base"]["path"])), "merged_model")
    with artifacts.store.new_version("merged_model") as folder:
        result = merge_adapter(
            Path(manifest["merge_base"]["path"]),
            lora_adapter,
            folder,
            eval_conversations=[e["conversations"] for e in evals],
            eval_titles=titles,
            stop_conversations=stop_conversations(all_evals, read_jsonl(sft_dataset / "train.jsonl")),
            max_length=profile.train.max_length,
            dtype=profile.merge_dtype,  # None: the merge base's stored dtype
            device=device.kind,
        )
        (folder / "merge_report.json").write_text(json.dumps(dataclasses.asdict(result), indent=2, ensure_ascii=False))
    path = artifacts.store.current("merged_model")
    context.log.info(f"merged into {manifest['merge_base']['id']}; max |logit diff| {result.max_abs_logit_diff:.2e}")
    return dg.Output(
        path,
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "merge_base": manifest["merge_base"]["id"],
            "dtype": result.dtype,
            "dtype_from": "the profile's merge_dtype" if profile.merge_dtype else "the merge base's config.json",
            "accelerator": dg.MetadataValue.json(device.describe()),
            "size_bytes": sum(p.stat().st_size for p in path.glob("*.safetensors")),
            "max_abs_logit_diff": result.max_abs_logit_diff,
            "logit_tolerance": result.logit_tolerance,
            "stop_probability_base": round(result.base_stopping["geometric_mean_probability"], 4),
            "stop_probability_finetuned": round(result.tuned_stopping["geometric_mean_probability"], 4),
            "base_vs_finetuned": md_table(
                ["title", "base model", "fine-tuned"],
                zip(titles, result.base_completions, result.tuned_completions),
            ),
        },
    )


@dg.asset_check(asset=merged_model, blocking=True, description="Merged logits equal adapter-on-base logits within the dtype's tolerance.")
def merged_logits_match_adapter(merged_model: Path) -> dg.AssetCheckResult:
    report = json.loads((merged_model / "merge_report.json").read_text())
    gap, tolerance = report["max_abs_logit_diff"], report["logit_tolerance"]
    return dg.AssetCheckResult(
        passed=gap <= tolerance,  # inf when any logit was NaN or inf (core/merge.py: max_abs_difference)
        metadata={"max_abs_logit_diff": gap, "tolerance": tolerance, "dtype": report["dtype"]},
    )

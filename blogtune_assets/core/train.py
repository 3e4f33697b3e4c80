"""The SFT recipe: LoRA on all seven projections with trl's SFTTrainer.

The training path, in the order a run takes it:
- `assets/model.py::lora_adapter` (Dagster) merges the profile's `TrainSettings` (`core/profiles.py`) with the run
  config, writes a `TrainRequest` and launches `train_process.py` through Dagster Pipes, under torchrun when
  there is more than one process (`core/device.py` decides device, dtype and process count).
- `train_process.py` runs in each process and calls `train_lora` here; only rank 0 reports to Dagster.
- `train_lora` loads the split (`load_sft_split`: `core/chat_tokens.py` turns each conversation into
  input_ids and labels), the base (`load_train_model`: 4-bit QLoRA on CUDA, fp32 on the CPU), measures the
  base's losses, resumes from the newest complete checkpoint (`core/checkpoints.py`), trains, measures again
  and saves the adapter; `lora_adapter` then writes the model card (`core/model_card.py`).

What the model sees: ``<|im_start|>user\n{title}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n{body}<|im_end|>\n``,
tokenized by `ChatEncoder` (the title and body as plain text, so a post cannot forge a control token), with
labels only on the assistant part (the empty thinking block, the body, ``<|im_end|>\n``). trl receives the
ids and labels ready, so its assistant-only masking, which needs a template it recognises, stays off. The
inference prompt (`enable_thinking=False` in the base's template, and the GGUF's template) ends in exactly
that empty thinking block, so training and inference prompts are identical (`test_chat_tokens.py`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate.utils import broadcast_object_list
from datasets import DatasetDict, load_dataset
from peft import LoraConfig, PeftModel, prepare_model_for_kbit_training
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, PrinterCallback, TrainerCallback
from transformers.integrations import TensorBoardCallback
from trl import SFTConfig, SFTTrainer

from blogtune_assets.core.batching import padding_share
from blogtune_assets.core.chat_tokens import ChatEncoder
from blogtune_assets.core.checkpoints import CHECKPOINT, newest_complete_checkpoint
from blogtune_assets.core.device import Device
from blogtune_assets.core.profiles import TrainSettings
from blogtune_assets.core.warm_start import NEW_SPLIT

# Non-reentrant activation checkpointing, chosen here rather than left to whichever library enables it last:
# the reentrant kind backpropagates only when the checkpointed inputs require grad, which peft arranges with
# a hook on the embedding output.
CHECKPOINTING = {"use_reentrant": False}
CPU_NO_QLORA = "none: fp32 LoRA on CPU (bitsandbytes' 4-bit backward gives wrong gradients on CPU)"
QLORA = "nf4 4-bit base (bitsandbytes QLoRA)"


def load_sft_split(dataset_dir: Path, tokenizer, max_length: int) -> DatasetDict:
    """train.jsonl / eval.jsonl as `input_ids` and `labels` (core/chat_tokens), cut to max_length, which trl
    trains on as given.

    blogtune encodes the conversations itself: the format is the project's, not whatever template string
    the base ships, and post text stays plain text (a quoted <|im_end|> cannot end the loss mask early).
    It truncates too, because trl enforces max_length only on padded batches, not padding-free ones.
    """
    files = {"train": str(dataset_dir / "train.jsonl"), "eval": str(dataset_dir / "eval.jsonl")}
    if (dataset_dir / NEW_SPLIT).exists():  # a warm start's new examples (core/warm_start.py)
        files["new"] = str(dataset_dir / NEW_SPLIT)
    encoder = ChatEncoder(tokenizer.backend_tokenizer)

    def encode(row: dict) -> dict:
        encoded = encoder.encode_messages(row["conversations"])
        return {"input_ids": encoded.input_ids[:max_length], "labels": encoded.labels[:max_length]}

    return load_dataset("json", data_files=files).map(encode, remove_columns=["conversations"])


class QuantizedBaseWithoutCuda(ValueError):
    """A base stored 4-bit, asked to train where QLoRA cannot run."""


def load_train_model(base_dir: Path, device: Device):
    # unsloth's *-bnb-4bit checkpoints ship quantized; a full-precision base is quantized on load.
    already_quantized = "quantization_config" in json.loads((base_dir / "config.json").read_text())
    if already_quantized and not device.qlora:
        # Loaded anyway, it trains as 4-bit QLoRA on the CPU, with the wrong gradients CPU_NO_QLORA names, under
        # a `quantization` metric that says fp32.
        raise QuantizedBaseWithoutCuda(
            f"the train base {base_dir} is stored 4-bit (bitsandbytes) and 4-bit training needs a CUDA GPU: on the "
            f"{device.kind} bitsandbytes computes wrong gradients. Train on a GPU, or train plain LoRA on a full-precision "
            "base: set BLOGTUNE_BASE_MODEL to it (unsloth/Qwen3-4B for the qwen3-4b profile)"
        )
    if device.qlora:
        model = AutoModelForCausalLM.from_pretrained(
            base_dir,
            dtype=device.torch_dtype,
            use_safetensors=True,
            trust_remote_code=False,
            # One full copy per data-parallel process, each on its own GPU.
            device_map={"": int(os.environ.get("LOCAL_RANK", 0))},
            quantization_config=None
            if already_quantized
            else BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=device.torch_dtype,
            ),
        )
        # The kwargs here, not only in SFTConfig: whichever enables checkpointing last would otherwise decide.
        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=True, gradient_checkpointing_kwargs=CHECKPOINTING)
    return AutoModelForCausalLM.from_pretrained(base_dir, dtype=device.torch_dtype, use_safetensors=True, trust_remote_code=False)


def lora_config(settings: TrainSettings) -> LoraConfig:
    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def sft_config(settings: TrainSettings, checkpoint_dir: Path, device: Device) -> SFTConfig:
    return SFTConfig(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=settings.per_device_train_batch_size,
        per_device_eval_batch_size=settings.per_device_train_batch_size,
        gradient_accumulation_steps=settings.accumulation_per_process(device.num_processes),
        num_train_epochs=settings.num_train_epochs,
        max_steps=settings.max_steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler_type,
        warmup_steps=settings.warmup_ratio,  # a float below 1 is a ratio of all steps
        # load_sft_split already truncated; trl refuses a max_length it cannot enforce on padding-free batches.
        max_length=None if settings.padding_free else settings.max_length,
        packing=False,
        padding_free=settings.padding_free,
        train_sampling_strategy="random" if settings.padding_free else "group_by_length",
        gradient_checkpointing=True,
        gradient_checkpointing_kwargs=CHECKPOINTING,
        # Every LoRA parameter gets a gradient each step; left on for a PeftModel, DDP walks the graph for unused ones.
        ddp_find_unused_parameters=False,
        # The labels come with the data (load_sft_split); trl's template-based masking would refuse any
        # base whose template is not byte-identical to its bundled Qwen3 one.
        assistant_only_loss=False,
        bf16=device.bf16,
        fp16=device.fp16,
        use_cpu=device.kind == "cpu",
        seed=settings.seed,
        data_seed=settings.seed,
        logging_steps=settings.logging_steps,
        logging_first_step=True,
        eval_strategy="steps",
        eval_steps=settings.save_steps,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=2,
        report_to=["tensorboard"],
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


class ProgressCallback(TrainerCallback):
    """Turns trainer logs into one line per log step: loss, lr, tokens/s, ETA."""

    def __init__(self, emit: Callable[[str], None]):
        self.emit = emit
        self.started = time.monotonic()
        self.start_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()
        self.start_step = state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:
            return  # under data parallelism every process logs the same gathered numbers
        logs = dict(logs or {})
        elapsed = time.monotonic() - self.started
        done = state.global_step - self.start_step
        remaining = state.max_steps - state.global_step
        if "num_tokens" in logs and elapsed > 0:
            logs["tokens_per_s"] = logs["num_tokens"] / elapsed
        logs["eta_s"] = elapsed / done * remaining if done else float("nan")
        parts = [f"step {state.global_step}/{state.max_steps}"]
        for key, fmt in (("loss", ".4f"), ("eval_loss", ".4f"), ("learning_rate", ".2e"), ("tokens_per_s", ".0f"), ("eta_s", ".0f")):
            if key in logs and not (isinstance(logs[key], float) and math.isnan(logs[key])):
                parts.append(f"{key} {logs[key]:{fmt}}")
        self.emit(" · ".join(parts))


def _agree_across_processes(trainer, resume_from: Path | None, checkpoint_dir: Path) -> Path | None:
    """Rank 0 judged (and cleaned up) the checkpoints; every process resumes from its choice."""
    if trainer.args.world_size == 1:
        return resume_from
    choice = [resume_from.name if resume_from else ""]
    broadcast_object_list(choice, from_process=0)
    return checkpoint_dir / choice[0] if choice[0] else None


@dataclass
class TrainResult:
    metrics: dict
    log_history: list[dict]


def out_of_memory_advice(settings: TrainSettings, err: torch.OutOfMemoryError) -> str:
    batch, accumulation = settings.per_device_train_batch_size, settings.gradient_accumulation_steps
    smaller_batch = (
        f"per_device_train_batch_size {batch} → {batch // 2} with gradient_accumulation_steps "
        f"{accumulation} → {accumulation * 2} (the same effective batch), or "
        if batch > 1
        else ""
    )
    return (
        f"out of GPU memory while training: {str(err).splitlines()[0]}\n"
        f"Make a training step smaller in the lora_adapter run config (TrainConfig): {smaller_batch}"
        f"max_length {settings.max_length} → {settings.max_length // 2} (longer examples are truncated), e.g.\n"
        f"ops:\n  lora_adapter:\n    config: {{per_device_train_batch_size: {max(1, batch // 2)}, "
        f"gradient_accumulation_steps: {accumulation * 2 if batch > 1 else accumulation}, max_length: {settings.max_length // 2}}}"
    )


@contextmanager
def _explained_out_of_memory(settings: TrainSettings):
    try:
        yield
    except torch.OutOfMemoryError as err:
        raise RuntimeError(out_of_memory_advice(settings, err)) from err


def build_trainer(
    base_dir: Path,
    dataset_dir: Path,
    checkpoint_dir: Path,
    settings: TrainSettings,
    device: Device,
    emit: Callable[[str], None] = print,
    parent_adapter: Path | None = None,
) -> SFTTrainer:
    """The SFTTrainer for one process of a run: the base with a fresh LoRA (or, warm-starting, the parent
    adapter's, trainable), the encoded split, the recipe."""
    torch.manual_seed(settings.seed)
    args = sft_config(settings, checkpoint_dir, device)
    tokenizer = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=False)
    # Rank 0 encodes the split into the datasets cache while the others wait, then they read it from there.
    with args.main_process_first(desc="encoding the SFT split"):
        data = load_sft_split(dataset_dir, tokenizer, settings.max_length)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    model = load_train_model(base_dir, device)
    if parent_adapter is not None:
        model = PeftModel.from_pretrained(model, parent_adapter, is_trainable=True)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data["train"],
        eval_dataset=data["eval"],
        processing_class=tokenizer,
        peft_config=None if parent_adapter is not None else lora_config(settings),
        callbacks=[ProgressCallback(emit)],
    )
    trainer.remove_callback(PrinterCallback)  # ProgressCallback reports instead
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback):
            # Without this the evaluation before training opens its writer in ./runs of the cwd.
            callback.logging_dir = str(checkpoint_dir / "runs")
    return trainer


def train_lora(
    base_dir: Path,
    dataset_dir: Path,
    checkpoint_dir: Path,
    out_dir: Path,
    settings: TrainSettings,
    device: Device,
    emit: Callable[[str], None] = print,
    parent_adapter: Path | None = None,
) -> TrainResult:
    """Train, resuming from the newest checkpoint in checkpoint_dir if a previous run stopped; from
    `parent_adapter`'s weights when warm-starting (core/warm_start.py), else from a fresh LoRA.

    A CUDA out-of-memory (loading, evaluating or training) becomes a message saying what to change.
    """
    with _explained_out_of_memory(settings):
        trainer = build_trainer(base_dir, dataset_dir, checkpoint_dir, settings, device, emit, parent_adapter)
        # LoRA's B starts at zero, so before training the model *is* the base (warm-starting: the parent).
        base_eval = trainer.evaluate(metric_key_prefix="base")
        # A warm start's new examples: their loss under the parent, then under the warm adapter.
        new_examples = load_sft_split(dataset_dir, trainer.processing_class, settings.max_length).get("new")
        new_before = trainer.evaluate(new_examples, metric_key_prefix="new") if new_examples else None
        # Per-batch train losses are noisy at batch 2; a fixed sample of the train split before and after is not.
        train_sample = trainer.train_dataset.shuffle(seed=settings.seed).select(
            range(min(settings.train_loss_sample, len(trainer.train_dataset)))
        )
        base_train = trainer.evaluate(train_sample, metric_key_prefix="base_train")
        resume_from = newest_complete_checkpoint(checkpoint_dir, emit) if trainer.is_world_process_zero() else None
        resume_from = _agree_across_processes(trainer, resume_from, checkpoint_dir)
        if resume_from:
            emit(f"resuming from {resume_from}")
        train_output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        final_eval = trainer.evaluate()
        final_train = trainer.evaluate(train_sample, metric_key_prefix="train_split")
        new_after = trainer.evaluate(new_examples, metric_key_prefix="new") if new_examples else None
        trainer.save_model(str(out_dir))

        history = trainer.state.log_history
        train_losses = [h["loss"] for h in history if "loss" in h]
        tokens = max((h.get("num_tokens", 0) for h in history), default=0)
        runtime = train_output.metrics.get("train_runtime", 0.0)
        metrics = {
            "final_train_loss": round(train_losses[-1], 4) if train_losses else float("nan"),
            "eval_loss": round(final_eval["eval_loss"], 4),
            "base_eval_loss": round(base_eval["base_loss"], 4),
            "train_split_loss": round(final_train["train_split_loss"], 4),
            "base_train_split_loss": round(base_train["base_train_loss"], 4),
            "train_split_loss_examples": len(train_sample),
            "eval_loss_examples": len(trainer.eval_dataset),
            "mean_token_accuracy": round(final_eval.get("eval_mean_token_accuracy", float("nan")), 4),
            "train_runtime_s": round(runtime, 1),
            "steps": trainer.state.global_step,
            "train_tokens": int(tokens),
            "train_tokens_per_s": round(tokens / runtime, 1) if runtime else 0.0,
            "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
            "quantization": f"{QLORA}, {device.dtype} compute" if device.qlora else CPU_NO_QLORA,
            "device": device.kind,
            "num_processes": trainer.args.world_size,
            "effective_batch": trainer.args.per_device_train_batch_size * trainer.args.gradient_accumulation_steps * trainer.args.world_size,
            "batching": "padding-free (position ids restart per example)" if settings.padding_free else "padded, grouped by length",
            "padding_share": 0.0 if settings.padding_free else round(
                padding_share([len(ids) for ids in trainer.train_dataset["input_ids"]], settings.per_device_train_batch_size, grouped=True, seed=settings.seed), 4
            ),
            **({"measured_peak_memory_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2)} if device.kind == "cuda" else {}),
            **(
                {"new_examples_loss_before": round(new_before["new_loss"], 4), "new_examples_loss_after": round(new_after["new_loss"], 4)}
                if new_examples
                else {}
            ),
            "resumed_from_checkpoint": resume_from.name if resume_from else "",
            "resumed_from_step": int(CHECKPOINT.match(resume_from.name)[1]) if resume_from else 0,
        }
        return TrainResult(metrics=metrics, log_history=history)

"""The one prepared GPU check of the training path: run it once on a lent GPU; CI runs it at toy size on the CPU.

What it does, each part with the project's own code (`core/train.py`, `core/merge.py`, `core/memory.py`):
1. A random-init model with Qwen3-4B's full shape (`--size full`; `toy`: the qwen3-shape profile's 2 layers of
   256) and Qwen3's real vocabulary (151,936 tied rows, the tokenizer built offline from llama.cpp's copy),
   saved in bf16 as the merge base. On CUDA it is quantized to NF4 and saved again, so training loads a
   pre-quantized checkpoint the way it loads `unsloth/Qwen3-4B-unsloth-bnb-4bit`.
2. `train_lora` for `--steps` optimizer steps of the reference recipe (2 x 8 sequences, lr 2e-4, max length
   4,096) on synthetic posts with the reference run's length distribution, padding-free and then padded:
   tokens/s, MFU, measured peak memory beside `estimate_peak_memory`'s figure.
3. A run stopped after its first checkpoint and started again: it must resume from that checkpoint.
4. The merge, in the dtype the base is stored in (bf16), with the adapter-vs-merged logit gap.
5. LoRA gradients after a no-grad forward equal those before it (bitsandbytes' 4-bit backward on the CPU gets
   this wrong; on CUDA it must be right).

MFU counts 4·N FLOPs a real token, N being the matmul weights (decoder projections and the tied output head):
2·N forward, 2·N backward through the activations, none for the frozen weights' gradients. Attention's
score FLOPs, LoRA's own and gradient checkpointing's recomputation are not counted as useful work.

On the lent machine (Python 3.12 with torch; the pinned transformers, peft, trl, datasets, bitsandbytes and the
tokenizer travel: `make gpu-check-carry` prepares `.whl/` and `.gpu_check/`, carried as [.whl, .gpu_check]):

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
    mkdir -p /tmp/qwen3_tokenizer && tar -xJf .gpu_check/qwen3_tokenizer.tar.xz -C /tmp/qwen3_tokenizer
    PYTHONUNBUFFERED=1 python3 -m benchmarks.gpu_check --size full --steps 16 --tokenizer /tmp/qwen3_tokenizer --out $OUT
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import time
from importlib.metadata import version
from pathlib import Path

QWEN3_4B = {
    "hidden_size": 2560, "num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8,
    "head_dim": 128, "intermediate_size": 9728, "vocab_size": 151_936, "tie_word_embeddings": True,
    "max_position_embeddings": 40_960, "rope_theta": 1_000_000.0, "rms_norm_eps": 1e-6,
}  # fmt: skip
SIZES = {
    "full": QWEN3_4B,
    # The qwen3-shape profile's geometry (core/qwen3_shape.py): the real vocabulary, a CPU-sized body.
    "toy": {**QWEN3_4B, "hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1, "intermediate_size": 512},
}
# Dense bf16 peak by device name (--peak-tflops for any other). H200: 989 on paper, 769-798 measured here on
# an 8192^3 matmul (device/KINDS.md); MFU is quoted against the paper figure.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "4090": 165.0, "4070": 58.0}
# The reference run's example lengths in Qwen3 tokens: log-normal, mean ~1,169 (results/training_efficiency.json).
LENGTH_MU, LENGTH_SIGMA = 6.75, 0.75
WORDS = "the model post blog training token a of and to in is that for it with as on was 学习 模型 数据 训练".split()


def build_bases(shape: dict, tokenizer_dir: Path, work: Path, cuda: bool) -> tuple[Path, Path]:
    """(training base, merge base): the merge base in bf16 (fp32 on the CPU, where bf16 matmuls crawl); on CUDA
    the training base is its NF4 copy."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, Qwen3Config, Qwen3ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = Qwen3Config(
        **shape, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tokenizer.pad_token_id, bos_token_id=151643
    )
    merge_base = work / "merge_base"
    torch.manual_seed(0)
    with torch.device("cuda" if cuda else "cpu"):
        model = Qwen3ForCausalLM(config).to(torch.bfloat16 if cuda else torch.float32)
    model.save_pretrained(merge_base)
    tokenizer.save_pretrained(merge_base)
    del model
    if not cuda:
        return merge_base, merge_base  # QLoRA is for CUDA only: the CPU trains fp32 LoRA on the full-precision base
    train_base = work / "train_base_nf4"
    quantization = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16
    )
    quantized = AutoModelForCausalLM.from_pretrained(merge_base, quantization_config=quantization, device_map={"": 0})
    quantized.save_pretrained(train_base)
    tokenizer.save_pretrained(train_base)
    del quantized
    torch.cuda.empty_cache()
    return train_base, merge_base


def write_posts(folder: Path, train: int, evals: int, seed: int = 42) -> Path:
    """train.jsonl / eval.jsonl of synthetic posts whose lengths follow the reference run's distribution."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in (("train", train), ("eval", evals)):
        with (folder / f"{name}.jsonl").open("w", encoding="utf-8") as f:
            for i in range(count):
                words = max(16, round(rng.lognormvariate(LENGTH_MU, LENGTH_SIGMA)))
                body = " ".join(rng.choice(WORDS) for _ in range(words))
                conversation = [{"role": "user", "content": f"Post {name} {i}"}, {"role": "assistant", "content": body}]
                f.write(json.dumps({"conversations": conversation}, ensure_ascii=False) + "\n")
    return folder


def matmul_weights(shape: dict) -> int:
    from blogtune_assets.core.memory import projection_shapes

    decoder = shape["num_hidden_layers"] * sum(i * o for i, o in projection_shapes(shape).values())
    return decoder + shape["vocab_size"] * shape["hidden_size"]  # the output head's matmul, tied or not


class ForcedStop(RuntimeError):
    pass


def train_run(name: str, base: Path, data: Path, work: Path, settings, device, shape: dict, peak_tflops: float | None, stop_after: int = 0) -> dict:
    """One train_lora run; `stop_after` > 0 raises at the log line of that step, as a crash would."""
    import torch

    from blogtune_assets.core.memory import estimate_peak_memory
    from blogtune_assets.core.train import train_lora

    def emit(line: str) -> None:
        print(f"[{name}] {line}", flush=True)
        if stop_after and line.startswith(f"step {stop_after}/"):
            raise ForcedStop(f"stopped at step {stop_after}")

    if device.kind == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = train_lora(base, data, work / "checkpoints", work / name, settings, device, emit=emit)
    m = result.metrics
    estimate = estimate_peak_memory(
        shape, lora_r=settings.lora_r, target_modules=settings.target_modules,
        tokens=settings.per_device_train_batch_size * settings.max_length, dtype=device.dtype, qlora=device.qlora,
    )  # fmt: skip
    flops_per_s = 4 * matmul_weights(shape) * m["train_tokens_per_s"]
    return {
        "run": name,
        "batching": m["batching"],
        "steps": m["steps"],
        "resumed_from_step": m["resumed_from_step"],
        "train_tokens": m["train_tokens"],
        "train_tokens_per_s": m["train_tokens_per_s"],
        "model_tflops_per_s": round(flops_per_s / 1e12, 3),
        "mfu": round(flops_per_s / (peak_tflops * 1e12), 4) if peak_tflops else None,
        "measured_peak_memory_gb": m.get("measured_peak_memory_gb"),
        "estimated_peak_memory_gb": round(estimate.total_gb, 2),
        "final_train_loss": m["final_train_loss"],
        "eval_loss": m["eval_loss"],
        "quantization": m["quantization"],
        "wall_s": round(time.perf_counter() - started, 1),
    }


def lora_gradients_after_no_grad_forward(base: Path, settings, device) -> dict:
    """The relative gap between LoRA gradients taken before and after a no-grad forward of the same batch."""
    import torch
    from peft import get_peft_model

    from blogtune_assets.core.train import load_train_model, lora_config

    model = get_peft_model(load_train_model(base, device), lora_config(settings))
    torch.manual_seed(1)
    for name, param in model.named_parameters():
        if "lora_B" in name:  # off its zero init, so lora_A gets a gradient too
            torch.nn.init.normal_(param, std=0.02)
    ids = torch.randint(0, 151_643, (1, 256), device=model.device)
    model.train()

    def lora_gradients() -> dict:
        model.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()
        return {n: p.grad.float().clone() for n, p in model.named_parameters() if p.requires_grad}

    before = lora_gradients()
    with torch.no_grad():
        model(input_ids=ids)
    after = lora_gradients()
    gap = max(((after[n] - g).abs().max() / g.abs().max().clamp_min(1e-12)).item() for n, g in before.items())
    return {"max_relative_gap": gap, "right": gap < 1e-2, "qlora": device.qlora}


def merge_run(merge_base: Path, adapter: Path, data: Path, work: Path, device, max_length: int) -> dict:
    from blogtune_assets.core.merge import LOGIT_TOLERANCE, merge_adapter

    evals = [json.loads(line) for line in (data / "eval.jsonl").read_text(encoding="utf-8").splitlines()]
    started = time.perf_counter()
    result = merge_adapter(
        merge_base, adapter, work / "merged", [e["conversations"] for e in evals[:2]], [e["conversations"][0]["content"] for e in evals[:2]],
        stop_conversations=[e["conversations"] for e in evals], max_length=max_length, max_new_tokens=16, device=device.kind,
    )  # fmt: skip
    return {
        "dtype": result.dtype,
        "max_abs_logit_diff": result.max_abs_logit_diff,
        "tolerance": LOGIT_TOLERANCE[result.dtype],
        "within_tolerance": result.max_abs_logit_diff <= LOGIT_TOLERANCE[result.dtype],
        "wall_s": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps per run (even: the stop comes at half)")
    parser.add_argument("--tokenizer", type=Path, help="Qwen3's tokenizer folder (default: build it offline here)")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the GPU, if not in PEAK_TFLOPS")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu_check"))
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    args = parser.parse_args(argv)

    from blogtune_assets.core.device import resolve_device
    from blogtune_assets.core.profiles import get_profile

    device = resolve_device()
    cuda = device.kind == "cuda"
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in device.gpu), None)
    tokenizer = args.tokenizer
    if tokenizer is None:
        from blogtune_assets.core.qwen3_tokenizer import qwen3_tokenizer_dir

        tokenizer = qwen3_tokenizer_dir(log=print)
    shutil.rmtree(args.work, ignore_errors=True)
    shape = SIZES[args.size]
    recipe = get_profile("qwen3-4b").train
    evals = 8
    if args.size == "toy":  # seconds on a CPU, not hours: one short micro-batch a step, one post to evaluate
        recipe, evals = dataclasses.replace(recipe, gradient_accumulation_steps=1, max_length=128), 1
    settings = dataclasses.replace(recipe, max_steps=args.steps, save_steps=args.steps // 2, logging_steps=1, train_loss_sample=evals)
    report: dict = {"device": device.describe(), "size": args.size, "shape": shape, "peak_bf16_tflops": peak, "steps": args.steps}

    started = time.perf_counter()
    train_base, merge_base = build_bases(shape, tokenizer, args.work, cuda)
    report["build_bases_s"] = round(time.perf_counter() - started, 1)
    data = write_posts(args.work / "posts", train=settings.effective_batch * args.steps, evals=evals)

    runs = []
    for padding_free in (True, False):
        runs.append(train_run(
            "padding_free" if padding_free else "padded", train_base, data, args.work / f"run_{padding_free}",
            dataclasses.replace(settings, padding_free=padding_free), device, shape, peak,
        ))  # fmt: skip
        print(json.dumps(runs[-1]), flush=True)
    report["runs"] = runs

    resume_dir = args.work / "resume"
    try:
        train_run("stopped", train_base, data, resume_dir, settings, device, shape, peak, stop_after=settings.save_steps + 1)
        raise AssertionError("the forced stop did not happen")
    except ForcedStop:
        pass
    resumed = train_run("resumed", train_base, data, resume_dir, settings, device, shape, peak)
    report["stop_and_resume"] = {**resumed, "resumed_where_saved": resumed["resumed_from_step"] == settings.save_steps}

    report["merge"] = merge_run(merge_base, resume_dir / "resumed", data, args.work, device, settings.max_length)
    report["lora_gradients_after_no_grad_forward"] = lora_gradients_after_no_grad_forward(train_base, settings, device)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["libraries"] = {name: version(name) for name in ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes", "datasets")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("shape", "runs")}, indent=1))
    return report


if __name__ == "__main__":
    main()

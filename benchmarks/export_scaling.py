"""HF → bf16 GGUF → Q4_K_M: time and peak memory as the model grows.

Random-init Qwen3-shaped checkpoints are built locally from transformers' Qwen3Config
(no downloads): the tiny profile's shape, then Qwen3-0.6B's shape (hidden 1024,
16/8 heads, head dim 128, FFN 3072, vocab 151,936, tied) with 7, 14 and 28 layers.
Conversion (blogtune_assets.core.gguf_export.convert_to_gguf) and quantization
(quantize_q4_k_m, llama.cpp's) each run in a fresh process, so each peak RSS is its own.

    .venv/bin/python -m benchmarks.export_scaling --sizes tiny 7 14 28
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks import measure

QWEN3_06B = {
    "hidden_size": 1024,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "intermediate_size": 3072,
    "vocab_size": 151_936,
    "max_position_embeddings": 40_960,
}
TINY = {
    "hidden_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "vocab_size": 4096,
    "max_position_embeddings": 4096,
}


def shape(size: str) -> dict:
    """'tiny' or a layer count of the Qwen3-0.6B shape (28 is the real model)."""
    return dict(TINY) if size == "tiny" else {**QWEN3_06B, "num_hidden_layers": int(size)}


def build_checkpoint(size: str, tokenizer_dir: Path, out: Path) -> dict:
    """A random-init Qwen3 saved like a hub checkpoint: bf16 safetensors plus the tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = Qwen3Config(
        **shape(size),
        tie_word_embeddings=True,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return {"parameters": sum(p.numel() for p in model.parameters())}


def convert(model_dir: Path, gguf_path: Path) -> dict:
    from blogtune_assets.core.gguf_export import convert_to_gguf

    result = convert_to_gguf(model_dir, gguf_path, name="bench")
    return {"convert_s": result.seconds, "tensors": result.tensors}


def quantize(src: Path, dst: Path) -> dict:
    from blogtune_assets.core.gguf_export import quantize_q4_k_m

    return {"quantize_s": quantize_q4_k_m(src, dst)}


def bench_size(size: str, work: Path, tokenizer_dir: Path, repeats: int) -> dict:
    model_dir, bf16, q4 = work / f"hf-{size}", work / f"{size}-bf16.gguf", work / f"{size}-q4km.gguf"
    built = measure.in_child(build_checkpoint, size, tokenizer_dir, model_dir)
    hf_bytes = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
    conversions = [measure.in_child(convert, model_dir, bf16) for _ in range(repeats)]
    quantizations = [measure.in_child(quantize, bf16, q4) for _ in range(repeats)]
    conversion, quantization = measure.median_of(conversions), measure.median_of(quantizations)
    result = {
        "size": size,
        "shape": shape(size),
        "parameters": built["parameters"],
        "hf_bf16_mb": hf_bytes / measure.MB,
        "convert": conversion,
        "quantize": quantization,
        "bf16_gguf_mb": bf16.stat().st_size / measure.MB,
        "q4_k_m_mb": q4.stat().st_size / measure.MB,
    }
    for path in (model_dir / "model.safetensors", bf16, q4):
        path.unlink()
    return result


def plot(results: list[dict], out: Path) -> Path:
    fig, axes = measure.new_figure(2)
    left, right = axes[0]
    params = [r["parameters"] / 1e6 for r in results]
    left.plot(params, [r["convert"]["convert_s"] for r in results], "o-", label="HF → bf16 GGUF")
    left.plot(params, [r["quantize"]["quantize_s"] for r in results], "s-", label="bf16 → Q4_K_M")
    left.set(xlabel="parameters (M)", ylabel="seconds (median)", title="export time")
    left.legend(fontsize=8)
    right.plot(params, [r["hf_bf16_mb"] for r in results], "k:", label="one bf16 copy of the model")
    right.plot(params, [r["convert"]["peak_rss_mb"] for r in results], "o-", label="convert peak RSS")
    right.plot(params, [r["quantize"]["peak_rss_mb"] for r in results], "s-", label="quantize peak RSS")
    right.plot(params, [r["convert"]["rss_after_imports_mb"] for r in results], "x--", label="process after imports")
    right.set(xlabel="parameters (M)", ylabel="MB", title="peak memory")
    right.legend(fontsize=8)
    return measure.save_figure(fig, out, "export_scaling")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "7", "14", "28"], help="'tiny' or layers of the 0.6B shape")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=measure.RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="blogtune-export-") as tmp:
        work = Path(tmp)
        tokenizer_dir = measure.tiny_tokenizer(work / "tokenizer")
        results = [bench_size(size, work, tokenizer_dir, args.repeats) for size in args.sizes]
    measure.print_table(
        ["model", "params M", "bf16 MB", "convert s", "convert peak MB", "Q4_K_M s", "quantize peak MB", "Q4_K_M MB"],
        [
            [
                r["size"], r["parameters"] / 1e6, r["hf_bf16_mb"], r["convert"]["convert_s"], r["convert"]["peak_rss_mb"],
                r["quantize"]["quantize_s"], r["quantize"]["peak_rss_mb"], r["q4_k_m_mb"],
            ]
            for r in results
        ],
    )
    payload = {"repeats": args.repeats, "models": results}
    print("wrote", measure.write_results(args.out, "export_scaling", payload), plot(results, args.out))
    return payload


if __name__ == "__main__":
    main()

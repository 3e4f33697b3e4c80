"""gguf_q4km: the file a user deploys, proven to run in llama.cpp."""

import json
from pathlib import Path

import dagster as dg

from blogtune_assets.assets.metadata import md_table
from blogtune_assets.core.manifest import read_manifest
from blogtune_assets.core.disk import ensure_free_space, gguf_bytes
from blogtune_assets.core.gguf_verify import LOGIT_TOLERANCE, agreement_with_hf, gguf_metadata_mismatches, measure_gguf
from blogtune_assets.core.stopping import STOP_GAIN, STOP_TOP1_SHARE, StopStats, learned_to_stop
from blogtune_assets.core.modelfile import modelfile
from blogtune_assets.compute import HEAVY
from blogtune_assets.core.sft import read_jsonl
from blogtune_assets.resources import ArtifactHome, ModelProfile

GROUP = "export"
Q4_NAME = "model-Q4_K_M.gguf"
# Q4_K_M may cost at most this much perplexity relative to the F16/BF16 file on the eval split.
PERPLEXITY_TOLERANCE = 0.15


@dg.asset(group_name=GROUP, kinds={"gguf", "llama.cpp"}, code_version="2", **HEAVY)
def gguf_q4km(
    context: dg.AssetExecutionContext,
    merged_model: Path,
    base_model: Path,
    sft_dataset: Path,
    model_profile: ModelProfile,
    artifacts: ArtifactHome,
) -> dg.Output[Path]:
    """The merged model as an F16 or BF16 GGUF (its own precision, as llama.cpp's converter picks), quantized to
    Q4_K_M by llama.cpp, with an ollama Modelfile and sample posts."""
    # Imported here, as in every asset that needs them: the definitions load without transformers or torch.
    from transformers import AutoTokenizer

    from blogtune_assets.core.gguf_export import convert_to_gguf, intermediate_type, quantize_q4_k_m, summarize

    profile = model_profile.settings
    max_length = profile.train.max_length
    manifest = read_manifest(base_model)
    evals = read_jsonl(sft_dataset / "eval.jsonl")
    ensure_free_space(artifacts.store.home, gguf_bytes(merged_model), "gguf_q4km")
    intermediate = intermediate_type(merged_model)
    intermediate_name = f"model-{intermediate.label}.gguf"
    with artifacts.store.new_version("gguf_q4km") as folder:
        converted = convert_to_gguf(merged_model, folder / intermediate_name, name=f"blogtune-{profile.name}", base_model=manifest["merge_base"]["id"])
        quant_seconds = quantize_q4_k_m(folder / intermediate_name, folder / Q4_NAME)
        (folder / "Modelfile").write_text(modelfile(Q4_NAME, max_length))
        measured = measure_gguf(
            folder / intermediate_name,
            folder / Q4_NAME,
            AutoTokenizer.from_pretrained(merged_model),
            evals,
            read_jsonl(sft_dataset / "train.jsonl"),
            max_length,
        )
        merge_report = json.loads((merged_model / "merge_report.json").read_text())
        # The checks open the intermediate file by this name.
        report = {
            "intermediate_file": intermediate_name,
            "intermediate_type": intermediate.label,
            "convert_seconds": converted.seconds,
            "quantize_seconds": quant_seconds,
            "intermediate_perplexity": measured.intermediate_perplexity,
            "q4_k_m_perplexity": measured.q4_k_m_perplexity,
            "stopping": {
                "base": merge_report["base_stopping"],
                "merged": merge_report["tuned_stopping"],
                "q4_k_m": measured.q4_k_m_stopping.as_dict(),
            },
            "samples": [s.__dict__ for s in measured.samples],
        }
        (folder / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    path = artifacts.store.current("gguf_q4km")
    q4 = summarize(path / Q4_NAME)
    context.log.info(f"Q4_K_M: {path / Q4_NAME} ({q4.size_bytes / 1e6:.1f} MB, {q4.bits_per_weight:.2f} bits/weight)")
    return dg.Output(
        path,
        metadata={
            "path": dg.MetadataValue.path(str(path / Q4_NAME)),
            "size_bytes": q4.size_bytes,
            "bits_per_weight": round(q4.bits_per_weight, 3),
            "quant_type": "Q4_K_M",
            "intermediate_type": intermediate.label,
            "intermediate_path": dg.MetadataValue.path(str(path / intermediate_name)),
            "file_type": q4.file_type,
            "tensor_types": md_table(["type", "tensors"], sorted(q4.tensor_types.items())),
            **{f"tensors_{t.lower()}": n for t, n in q4.tensor_types.items()},
            "intermediate_perplexity": round(report["intermediate_perplexity"], 3),
            "q4_k_m_perplexity": round(report["q4_k_m_perplexity"], 3),
            "convert_seconds": round(report["convert_seconds"], 2),
            "quantize_seconds": round(report["quantize_seconds"], 2),
            "stop_probability_q4_k_m": round(measured.q4_k_m_stopping.geometric_mean_probability, 4),
            "stop_top1_share_q4_k_m": round(measured.q4_k_m_stopping.top1_share, 3),
            "modelfile": dg.MetadataValue.md(f"```\n{(path / 'Modelfile').read_text()}```"),
            "ollama_create": f"ollama create blogtune -f {path / 'Modelfile'}",
            "sample_generations": md_table(
                ["title", "generated body", "finish", "tokens"],
                [(s.title, s.text[:600], s.finish_reason, s.tokens) for s in measured.samples],
            ),
        },
    )


@dg.asset_check(
    asset=gguf_q4km,
    additional_ins={"merged_model": dg.AssetIn("merged_model"), "sft_dataset": dg.AssetIn("sft_dataset")},
    description=f"Both GGUF files carry the merged HF model's special token ids and hyperparameters; llama.cpp "
    f"tokenizes the eval conversations and a fixed English+Chinese probe as the HF tokenizer does; and the "
    f"F16/BF16 GGUF's teacher-forced logits equal the merged HF model's within {LOGIT_TOLERANCE} x their spread "
    f"(standard deviation), with top-1 agreeing wherever the two best logits are further apart than twice that.",
)
def gguf_matches_hf(gguf_q4km: Path, merged_model: Path, sft_dataset: Path) -> dg.AssetCheckResult:
    from transformers import AutoTokenizer

    intermediate_name = json.loads((gguf_q4km / "report.json").read_text())["intermediate_file"]
    mismatches = [
        (name, m.key, str(m.in_gguf), str(m.in_hf))
        for name in (intermediate_name, Q4_NAME)
        for m in gguf_metadata_mismatches(gguf_q4km / name, merged_model)
    ]
    tokenizer = AutoTokenizer.from_pretrained(merged_model)
    texts = [tokenizer.apply_chat_template(e["conversations"], tokenize=False) for e in read_jsonl(sft_dataset / "eval.jsonl")]
    result = agreement_with_hf(gguf_q4km / intermediate_name, merged_model, texts)
    logits = result.logits.__dict__ if result.logits else {}
    return dg.AssetCheckResult(
        passed=result.passed and not mismatches,
        metadata={
            "texts": result.texts,
            "tokenization_mismatches": len(result.tokenization_mismatches),
            "metadata_mismatches": len(mismatches),
            "metadata_mismatch_table": md_table(["file", "key", "GGUF", "HF"], mismatches),
            **logits,
        },
    )


@dg.asset_check(asset=gguf_q4km, description=f"Q4_K_M perplexity on eval text within {PERPLEXITY_TOLERANCE:.0%} of the F16/BF16 GGUF's.")
def q4_k_m_perplexity_close_to_intermediate(gguf_q4km: Path) -> dg.AssetCheckResult:
    report = json.loads((gguf_q4km / "report.json").read_text())
    ratio = report["q4_k_m_perplexity"] / report["intermediate_perplexity"]
    return dg.AssetCheckResult(
        passed=ratio <= 1 + PERPLEXITY_TOLERANCE,
        metadata={"ratio": round(ratio, 4), "intermediate": report["intermediate_perplexity"], "q4_k_m": report["q4_k_m_perplexity"]},
    )


@dg.asset_check(
    asset=gguf_q4km,
    description="The Q4_K_M model learned where posts end: after a post's whole body it gives <|im_end|> "
    f"{STOP_GAIN}x the base model's probability, or makes it the most likely token after {STOP_TOP1_SHARE:.0%} of posts.",
)
def learned_to_stop_after_a_post(gguf_q4km: Path) -> dg.AssetCheckResult:
    stopping = json.loads((gguf_q4km / "report.json").read_text())["stopping"]
    tuned, base = StopStats.from_dict(stopping["q4_k_m"]), StopStats.from_dict(stopping["base"])
    if not tuned.texts:
        return dg.AssetCheckResult(
            passed=False,
            description="No post fits in the training length, so where posts end was never trained or measured: "
            "raise max_length in the lora_adapter run config.",
            metadata={"posts": 0},
        )
    return dg.AssetCheckResult(
        passed=learned_to_stop(tuned, base),
        metadata={
            "posts": tuned.texts,
            "stop_probability_base": round(base.geometric_mean_probability, 4),
            "stop_probability_q4_k_m": round(tuned.geometric_mean_probability, 4),
            "gain": round(tuned.geometric_mean_probability / base.geometric_mean_probability, 3),
            "top1_share_q4_k_m": tuned.top1_share,
            "median_rank_q4_k_m": tuned.median_rank,
        },
    )

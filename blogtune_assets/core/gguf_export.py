"""HF safetensors → bf16 GGUF with the `gguf` package's writer, then → Q4_K_M with llama.cpp's quantizer.

The converter streams: tensor metadata comes from the safetensors headers, the
header is written first, then each tensor is loaded, converted and written on
its own, so peak memory is about one tensor, not a second copy of the model.
"""

from __future__ import annotations

import ctypes
import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import torch
from gguf.quants import quantize
from safetensors import safe_open
from transformers import AutoConfig, AutoTokenizer

# HF architecture → GGUF architecture. Both use Qwen2's tokenizer scheme and NeoX RoPE, so no
# weight permutation is needed (Llama's q/k permutation is why Llama is not listed).
SUPPORTED = {"Qwen3ForCausalLM": gguf.MODEL_ARCH.QWEN3, "Qwen2ForCausalLM": gguf.MODEL_ARCH.QWEN2}
# Qwen3's template thinks unless told not to; blogtune trains with the empty thinking block, so the GGUF's
# template adds it by default and llama.cpp renders the training prompt without extra flags.
THINKING_SWITCH = "{%- if enable_thinking is defined and enable_thinking is false %}"
NO_THINKING_DEFAULT = "{%- if not (enable_thinking is defined and enable_thinking is true) %}"


class UnsupportedArchitecture(ValueError):
    pass


@dataclass
class ConvertResult:
    path: Path
    tensors: int
    seconds: float


def inference_chat_template(template: str) -> str:
    if THINKING_SWITCH not in template:
        raise ValueError("chat template is not Qwen3's: cannot make the empty thinking block the default")
    return template.replace(THINKING_SWITCH, NO_THINKING_DEFAULT)


def _tensor_names(model_dir: Path) -> dict[str, Path]:
    names = {}
    for shard in sorted(model_dir.glob("*.safetensors")):
        with safe_open(shard, framework="pt") as f:
            names.update(dict.fromkeys(f.keys(), shard))
    if not names:
        raise FileNotFoundError(f"no safetensors weights in {model_dir}")
    return names


def _gguf_type(shape: tuple[int, ...]) -> gguf.GGMLQuantizationType:
    # Norms and other vectors stay F32, as llama.cpp's own converter keeps them.
    return gguf.GGMLQuantizationType.F32 if len(shape) == 1 else gguf.GGMLQuantizationType.BF16


def _add_hparams(writer: gguf.GGUFWriter, config) -> None:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    rope = getattr(config, "rope_parameters", None) or {}
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)


def _add_tokenizer(writer: gguf.GGUFWriter, model_dir: Path, vocab_size: int) -> None:
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    if spec["model"]["type"] != "BPE":
        raise UnsupportedArchitecture(f"tokenizer model {spec['model']['type']} is not byte-level BPE")
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = {t["id"]: t for t in spec.get("added_tokens", [])}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added[i]["special"] else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    # Set explicitly: llama.cpp otherwise guesses from a hash of the tokenizer and fails on new ones.
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    if tokenizer.bos_token_id is not None:
        writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_add_bos_token(False)
    writer.add_chat_template(inference_chat_template(tokenizer.chat_template))


def convert_to_gguf(model_dir: Path, out_path: Path, name: str, base_model: str = "") -> ConvertResult:
    started = time.monotonic()
    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=False)
    architecture = (config.architectures or ["?"])[0]
    if architecture not in SUPPORTED:
        raise UnsupportedArchitecture(
            f"cannot convert {architecture} to GGUF; supported: {', '.join(sorted(SUPPORTED))}"
        )
    arch = SUPPORTED[architecture]
    name_map = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    sources = _tensor_names(model_dir)
    tied = config.tie_word_embeddings

    plan = []  # (gguf name, hf name, shard, shape, type)
    for hf_name, shard in sources.items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reuses token_embd for the output when output.weight is absent
        gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise UnsupportedArchitecture(f"no GGUF name for tensor {hf_name} of {architecture}")
        with safe_open(shard, framework="pt") as f:
            shape = tuple(f.get_slice(hf_name).get_shape())
        plan.append((gguf_name, hf_name, shard, shape, _gguf_type(shape)))

    writer = gguf.GGUFWriter(out_path, gguf.MODEL_ARCH_NAMES[arch])
    writer.add_name(name)
    if base_model:
        writer.add_base_model_count(1)
        writer.add_base_model_name(0, base_model)
    _add_hparams(writer, config)
    _add_tokenizer(writer, model_dir, config.vocab_size)
    for gguf_name, _, _, shape, qtype in plan:
        itemsize = 4 if qtype == gguf.GGMLQuantizationType.F32 else 2
        writer.add_tensor_info(gguf_name, shape, np.float32 if itemsize == 4 else np.uint16, int(np.prod(shape)) * itemsize, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _, hf_name, shard, _, qtype in plan:
        with safe_open(shard, framework="pt") as f:
            data = f.get_tensor(hf_name).to(torch.float32).numpy()
        writer.write_tensor_data(data if qtype == gguf.GGMLQuantizationType.F32 else quantize(data, qtype))
        del data
    writer.close()
    return ConvertResult(path=out_path, tensors=len(plan), seconds=time.monotonic() - started)


def quantize_q4_k_m(src: Path, dst: Path, threads: int = 0) -> float:
    """llama.cpp's own Q4_K_M quantizer (llama_model_quantize), not a reimplementation."""
    import llama_cpp

    started = time.monotonic()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.nthread = threads or os.cpu_count() or 1
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize failed with code {rc} for {src}")
    return time.monotonic() - started


@dataclass
class GGUFSummary:
    file_type: int
    tensor_types: dict[str, int]
    parameters: int
    size_bytes: int

    @property
    def bits_per_weight(self) -> float:
        return self.size_bytes * 8 / self.parameters


def summarize(path: Path) -> GGUFSummary:
    reader = gguf.GGUFReader(path)
    field = reader.get_field("general.file_type")
    file_type = int(field.parts[field.data[0]][0])
    types = Counter(t.tensor_type.name for t in reader.tensors)
    params = sum(int(t.n_elements) for t in reader.tensors)
    return GGUFSummary(file_type=file_type, tensor_types=dict(types), parameters=params, size_bytes=path.stat().st_size)

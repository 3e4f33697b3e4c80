"""HF safetensors → F16/BF16 GGUF with the `gguf` package's writer, then → Q4_K_M with llama.cpp's quantizer.

The converter streams: tensor metadata comes from the safetensors headers, the
header is written first, then each tensor is loaded, converted and written on
its own, so peak memory is about one tensor, not a second copy of the model.
Metadata follows llama.cpp's own converter (convert_hf_to_gguf.py) for Qwen3.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
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

from blogtune_assets.core.tiny_tokenizer import IM_END

# HF architecture → GGUF architecture: only what the tests convert and run in llama.cpp. Qwen2 is close
# (same tokenizer scheme, NeoX RoPE) but has attention biases and no q/k norms, and nothing here tests it.
SUPPORTED = {"Qwen3ForCausalLM": gguf.MODEL_ARCH.QWEN3}
# Qwen3's template adds the empty thinking block only when enable_thinking is false. llama-server always
# passes enable_thinking (true unless --reasoning off), so the GGUF's template adds the block
# unconditionally: blogtune trains with it, and with no enable_thinking left in the template llama.cpp
# sees no thinking support and every runtime renders the training prompt.
THINKING_SWITCH = re.compile(
    r"\{%-?\s*if enable_thinking is defined and enable_thinking is false\s*-?%\}(.*?)\{%-?\s*endif\s*-?%\}", re.DOTALL
)


class UnsupportedArchitecture(ValueError):
    pass


class MissingHyperparameter(ValueError):
    pass


@dataclass(frozen=True)
class Intermediate:
    """The precision of the GGUF written before quantization."""

    label: str  # in file names and metadata
    file_type: gguf.LlamaFileType
    tensor_type: gguf.GGMLQuantizationType
    torch_dtype: torch.dtype


F16 = Intermediate("f16", gguf.LlamaFileType.MOSTLY_F16, gguf.GGMLQuantizationType.F16, torch.float16)
BF16 = Intermediate("bf16", gguf.LlamaFileType.MOSTLY_BF16, gguf.GGMLQuantizationType.BF16, torch.bfloat16)
BY_SAFETENSORS_DTYPE = {"F16": F16, "BF16": BF16}
BY_FILE_TYPE = {i.file_type: i for i in (F16, BF16)}


@dataclass
class ConvertResult:
    path: Path
    tensors: int
    seconds: float
    intermediate: Intermediate


@dataclass(frozen=True)
class SourceTensor:
    name: str
    shard: Path
    shape: tuple[int, ...]
    dtype: str  # safetensors' name: "F32", "F16", "BF16", …


def inference_chat_template(template: str) -> str:
    if len(THINKING_SWITCH.findall(template)) != 1:
        raise ValueError("chat template is not Qwen3's: cannot make the empty thinking block unconditional")
    return THINKING_SWITCH.sub(lambda m: m.group(1).strip(), template)


def _source_tensors(model_dir: Path) -> list[SourceTensor]:
    tensors = []
    for shard in sorted(model_dir.glob("*.safetensors")):
        with safe_open(shard, framework="pt") as f:
            for name in f.keys():
                header = f.get_slice(name)
                tensors.append(SourceTensor(name, shard, tuple(header.get_shape()), header.get_dtype()))
    if not tensors:
        raise FileNotFoundError(f"no safetensors weights in {model_dir}")
    return tensors


def _intermediate_of(tensors: list[SourceTensor]) -> Intermediate:
    # llama.cpp's --outtype auto: the first matrix stored in bf16 or fp16 decides (not config.json's
    # torch_dtype, which some fine-tunes misstate); an all-fp32 model becomes F16.
    matrices = (t for t in tensors if len(t.shape) >= 2 and t.dtype in BY_SAFETENSORS_DTYPE)
    return next((BY_SAFETENSORS_DTYPE[t.dtype] for t in matrices), F16)


def intermediate_type(model_dir: Path) -> Intermediate:
    """The precision convert_to_gguf writes model_dir in: F16 or BF16, as llama.cpp's converter chooses."""
    return _intermediate_of(_source_tensors(model_dir))


def _gguf_type(shape: tuple[int, ...], intermediate: Intermediate) -> gguf.GGMLQuantizationType:
    # Norms and other vectors stay F32, as llama.cpp's own converter keeps them.
    return gguf.GGMLQuantizationType.F32 if len(shape) == 1 else intermediate.tensor_type


def _rope_parameters(hparams: dict) -> dict:
    # Read from config.json itself, as llama.cpp does: transformers fills a missing rope_theta with 10000
    # without a word. transformers 5 writes rope_parameters, 4.x rope_theta + rope_scaling.
    rope = dict(hparams.get("rope_parameters") or hparams.get("rope_scaling") or {})
    rope.setdefault("rope_theta", hparams.get("rope_theta"))
    rope.setdefault("rope_type", rope.get("type"))
    if rope["rope_theta"] is None:
        raise MissingHyperparameter(
            "config.json has no rope_theta: set \"rope_theta\" (or \"rope_parameters\": {\"rope_theta\": …}) "
            "to the base model's value (1000000 for Qwen3), or RoPE positions are wrong in every runtime"
        )
    return rope


def _add_rope(writer: gguf.GGUFWriter, hparams: dict) -> None:
    rope = _rope_parameters(hparams)
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    kind = rope["rope_type"]
    if kind in (None, "default"):
        return
    if kind not in ("linear", "yarn"):
        raise UnsupportedArchitecture(f"RoPE scaling {kind!r} has no GGUF form here; supported: linear, yarn")
    writer.add_rope_scaling_type(gguf.RopeScalingType(kind))
    writer.add_rope_scaling_factor(float(rope["factor"]))
    if kind == "yarn":
        if "original_max_position_embeddings" not in rope:
            raise MissingHyperparameter("yarn RoPE scaling needs \"original_max_position_embeddings\" in config.json")
        writer.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))


def head_dim(config) -> int:
    # Qwen3 sets it (128 for Qwen3-4B, not hidden / heads = 80); older configs have none.
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def _add_hparams(writer: gguf.GGUFWriter, config, hparams: dict) -> None:
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(head_dim(config))
    writer.add_value_length(head_dim(config))
    _add_rope(writer, hparams)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)


# Texts llama.cpp's loader (src/llama-vocab.cpp) takes for end-of-generation tokens whatever the file
# says; it retypes them CONTROL with a "control-looking token" warning. Qwen's vocabulary has "</s>" as
# an ordinary BPE token (id 128247), so typing it CONTROL here changes nothing but the warning.
LLAMA_CPP_EOG_TEXTS = frozenset(
    {"</s>", "<end_of_turn>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<end_of_utterance>", "<eos>", "<turn|>", "[e~["}
)


def looks_like_control(token: str) -> bool:
    # llama.cpp's converter types such tokens CONTROL whatever their special flag (Qwen's <|fim_prefix|>
    # is not special), and llama.cpp warns on load about any it finds typed otherwise.
    return token.startswith("<|") and token.endswith("|>")


def _token_type(token: str | None, added: dict | None) -> gguf.TokenType:
    if token is None:
        return gguf.TokenType.UNUSED
    if added is None:  # an ordinary BPE token, unless llama.cpp will take it for an end token anyway
        return gguf.TokenType.CONTROL if token in LLAMA_CPP_EOG_TEXTS else gguf.TokenType.NORMAL
    return gguf.TokenType.CONTROL if added["special"] or looks_like_control(token) else gguf.TokenType.USER_DEFINED


def special_token_ids(tokenizer, config) -> dict[str, int | None]:
    """bos/eos/pad as llama.cpp's converter finds them: the tokenizer's, else config.json's (Qwen3 has
    no bos token but bos_token_id 151643; without it llama.cpp falls back to id 11, ","); eot is <|im_end|>."""
    ids = {}
    for kind in ("bos", "eos", "pad"):
        found = getattr(tokenizer, f"{kind}_token_id")
        ids[kind] = found if found is not None else getattr(config, f"{kind}_token_id", None)
    ids["eot"] = tokenizer.get_vocab().get(IM_END)
    return {kind: i if isinstance(i, int) else None for kind, i in ids.items()}


def _add_tokenizer(writer: gguf.GGUFWriter, model_dir: Path, config) -> None:
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    if spec["model"]["type"] != "BPE":
        raise UnsupportedArchitecture(f"tokenizer model {spec['model']['type']} is not byte-level BPE")
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = {t["id"]: t for t in spec.get("added_tokens", [])}
    ids = range(config.vocab_size)
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    # Set explicitly: llama.cpp otherwise guesses from a hash of the tokenizer and fails on new ones.
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list([by_id.get(i, f"[PAD{i}]") for i in ids])
    writer.add_token_types([_token_type(by_id.get(i), added.get(i)) for i in ids])
    writer.add_token_merges(merges)
    writers = {"bos": writer.add_bos_token_id, "eos": writer.add_eos_token_id, "pad": writer.add_pad_token_id, "eot": writer.add_eot_token_id}
    for kind, token_id in special_token_ids(tokenizer, config).items():
        if token_id is not None:
            writers[kind](token_id)
    writer.add_add_bos_token(False)
    writer.add_chat_template(inference_chat_template(tokenizer.chat_template))


def convert_to_gguf(model_dir: Path, out_path: Path, name: str, base_model: str = "") -> ConvertResult:
    started = time.monotonic()
    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=False)
    hparams = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    architecture = (config.architectures or ["?"])[0]
    if architecture not in SUPPORTED:
        raise UnsupportedArchitecture(
            f"cannot convert {architecture} to GGUF; supported: {', '.join(sorted(SUPPORTED))}"
        )
    arch = SUPPORTED[architecture]
    name_map = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    sources = _source_tensors(model_dir)
    intermediate = _intermediate_of(sources)

    plan = []  # (gguf name, source tensor, type)
    for source in sources:
        if config.tie_word_embeddings and source.name == "lm_head.weight":
            continue  # llama.cpp reuses token_embd for the output when output.weight is absent
        gguf_name = name_map.get_name(source.name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise UnsupportedArchitecture(f"no GGUF name for tensor {source.name} of {architecture}")
        plan.append((gguf_name, source, _gguf_type(source.shape, intermediate)))

    writer = gguf.GGUFWriter(out_path, gguf.MODEL_ARCH_NAMES[arch])
    writer.add_name(name)
    if base_model:
        writer.add_base_model_count(1)
        writer.add_base_model_name(0, base_model)
    _add_hparams(writer, config, hparams)
    writer.add_file_type(intermediate.file_type)
    _add_tokenizer(writer, model_dir, config)
    for gguf_name, source, qtype in plan:
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        writer.add_tensor_info(gguf_name, source.shape, np.float32, int(np.prod(source.shape)) // block * type_size, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _, source, qtype in plan:
        with safe_open(source.shard, framework="pt") as f:
            data = f.get_tensor(source.name).to(torch.float32).numpy()
        writer.write_tensor_data(quantize(data, qtype))
        del data
    writer.close()
    return ConvertResult(path=out_path, tensors=len(plan), seconds=time.monotonic() - started, intermediate=intermediate)


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

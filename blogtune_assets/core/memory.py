"""Peak device memory of a LoRA training step, estimated before training from the base's config.json.

Counted (bytes; T = tokens in the largest micro-batch, per_device_train_batch_size x max_length), for CUDA:
- weights: QLoRA stores the decoder's linear weights in NF4 with double quantization (4.127 bits a weight), and
  `prepare_model_for_kbit_training` casts everything else to fp32, the 151,936 x 2,560 tied embedding included
  (1.56 GB for Qwen3-4B); without QLoRA every weight is in the compute dtype.
- LoRA: r x (in + out) per targeted projection; weights, gradients and AdamW's two moments all in the LoRA
  weights' dtype (trl casts a quantized model's trainable parameters to bf16; fp32 otherwise).
- activations under gradient checkpointing: each layer's input kept (T x hidden), plus one layer recomputed
  at a time (attention projections and the MLP's three intermediate tensors). Under QLoRA these are fp32:
  the fp32 embedding starts the residual stream in fp32 and bitsandbytes' 4-bit layers return their
  input's dtype.
- the output head: trl 1.16's SFTTrainer never builds the T x 151,936 logits (12.5 GB at 2 x 4,096 in bf16 plus
  the loss's fp32 copies). Its chunked log-probability kernel (trl/kernels/chunked_logprob.py) projects tiles of
  4,096 tokens x 32,768 vocabulary columns in the compute dtype, from a compute-dtype copy of that slice of
  the (fp32) head, plus the hidden states' fp32 gradient and a few fp32 floats a token.
Not counted: the CUDA context and allocator fragmentation (~0.5-1 GB), which max_memory_allocated omits too.
Unmeasured until benchmarks/gpu_check.py runs on a GPU, which prints it beside the measured peak.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# trl 1.16's chunked log-probabilities: TOKEN_CHUNK_SIZE x _CHUNKED_LOGPROB_CHUNK_SIZE tiles.
HEAD_TILE_TOKENS, HEAD_TILE_COLUMNS = 4096, 32768
NF4_BITS = 4.127  # 4-bit codes + double-quantized absmax (8-bit per 64 weights + fp32 per 256 blocks)
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
GB = 1e9


@dataclass(frozen=True)
class MemoryEstimate:
    weights_gb: float
    lora_and_optimizer_gb: float
    activations_gb: float
    output_head_gb: float

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.lora_and_optimizer_gb + self.activations_gb + self.output_head_gb

    def as_dict(self) -> dict:
        return {**{k: round(v, 2) for k, v in asdict(self).items()}, "total_gb": round(self.total_gb, 2)}


def projection_shapes(config: dict) -> dict[str, tuple[int, int]]:
    """(in, out) features of each of a Qwen3 decoder layer's seven projections."""
    hidden, ffn = config["hidden_size"], config["intermediate_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    q, kv = config["num_attention_heads"] * head_dim, config["num_key_value_heads"] * head_dim
    return {
        "q_proj": (hidden, q), "k_proj": (hidden, kv), "v_proj": (hidden, kv), "o_proj": (q, hidden),
        "gate_proj": (hidden, ffn), "up_proj": (hidden, ffn), "down_proj": (ffn, hidden),
    }  # fmt: skip


def parameter_counts(config: dict) -> tuple[int, int]:
    """(the decoder's linear weights, everything else: embeddings, RMSNorms including Qwen3's q/k norms)."""
    layers, hidden = config["num_hidden_layers"], config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    linear = layers * sum(i * o for i, o in projection_shapes(config).values())
    embeddings = config["vocab_size"] * hidden * (1 if config.get("tie_word_embeddings", True) else 2)
    return linear, embeddings + layers * (2 * hidden + 2 * head_dim) + hidden


def lora_parameters(config: dict, lora_r: int, target_modules: tuple[str, ...]) -> int:
    return config["num_hidden_layers"] * sum(lora_r * (i + o) for name, (i, o) in projection_shapes(config).items() if name in target_modules)


def estimate_peak_memory(config: dict, *, lora_r: int, target_modules: tuple[str, ...], tokens: int, dtype: str, qlora: bool) -> MemoryEstimate:
    """Peak memory of one training step on a micro-batch of `tokens` tokens (see the module docstring)."""
    hidden, compute = config["hidden_size"], BYTES[dtype]
    linear, other = parameter_counts(config)
    weights = linear * NF4_BITS / 8 + other * 4 if qlora else (linear + other) * compute
    lora = lora_parameters(config, lora_r, target_modules) * 4 * (2 if qlora else compute)  # weight, grad, 2 moments
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    attention = (config["num_attention_heads"] + 2 * config["num_key_value_heads"]) * head_dim
    activation = 4 if qlora else compute
    saved_inputs = config["num_hidden_layers"] * tokens * hidden * activation
    one_layer = tokens * (3 * config["intermediate_size"] + 4 * hidden + attention) * activation
    columns = min(config["vocab_size"], HEAD_TILE_COLUMNS)
    head = min(tokens, HEAD_TILE_TOKENS) * columns * compute + columns * hidden * compute + tokens * (hidden * 4 + 8 * 4)
    return MemoryEstimate(weights / GB, lora / GB, (saved_inputs + one_layer) / GB, head / GB)

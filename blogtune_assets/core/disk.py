"""Free disk space, checked before a heavy asset writes, so a full disk fails in seconds with
numbers instead of an hour into a run with a half-written file.

The estimates are deliberately simple and on the safe side; each says what it counts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# merged_model: the merge base's weights written again, plus 10% for config, tokenizer and slack.
MERGED_MODEL_FACTOR = 1.1
# gguf_q4km: the bf16 GGUF (at most the merged safetensors' size) and the Q4_K_M file (~0.3 of it).
GGUF_FACTOR = 2.0
# lora_adapter: each of the two kept checkpoints holds the adapter and Adam's two moments (3 copies),
# plus the published adapter; the margin covers tokenizer files, TensorBoard events and logs.
ADAPTER_COPIES = 2 * 3 + 1
ADAPTER_MARGIN_BYTES = 256 * 2**20
# LoRA trains q, k, v, o, gate, up and down; k and v are taken at full width (an overestimate under GQA).
ATTENTION_PROJECTIONS, MLP_PROJECTIONS = 4, 3
FP32_BYTES = 4


class NotEnoughDiskSpace(RuntimeError):
    pass


def free_bytes(path: Path) -> int:
    """Free space on the file system that holds path (or would hold it: the nearest existing folder)."""
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def ensure_free_space(path: Path, needed_bytes: int, what: str) -> None:
    free = free_bytes(path)
    if free < needed_bytes:
        raise NotEnoughDiskSpace(
            f"not enough free disk space for {what} under {path}: it needs about {_size(needed_bytes)}, "
            f"{_size(free)} is free. Free some space or point BLOGTUNE_HOME at a larger disk."
        )


def merged_model_bytes(merge_base_dir: Path) -> int:
    return int(MERGED_MODEL_FACTOR * _safetensors_bytes(merge_base_dir))


def gguf_bytes(merged_model_dir: Path) -> int:
    return int(GGUF_FACTOR * _safetensors_bytes(merged_model_dir))


def lora_training_bytes(train_base_dir: Path, rank: int) -> int:
    return ADAPTER_MARGIN_BYTES + ADAPTER_COPIES * lora_adapter_bytes(train_base_dir, rank)


def lora_adapter_bytes(train_base_dir: Path, rank: int) -> int:
    """fp32 LoRA weights on every targeted projection of the base: r·(in + out) each."""
    config = json.loads((Path(train_base_dir) / "config.json").read_text())
    hidden, intermediate = config["hidden_size"], config["intermediate_size"]
    per_layer = ATTENTION_PROJECTIONS * 2 * hidden + MLP_PROJECTIONS * (hidden + intermediate)
    return FP32_BYTES * rank * config["num_hidden_layers"] * per_layer


def _safetensors_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"

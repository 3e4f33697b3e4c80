"""Resolve a profile's base model to local folders, and say exactly what it is.

The manifest this writes (`manifest.json`) is what every later stage reads:
the training base (4-bit on CUDA for qwen3-4b), the full-precision merge base,
and facts for lineage (ids, revisions or content hashes, architecture, size).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open
from transformers import AutoConfig, AutoTokenizer

from blogtune_assets.core import qwen3_shape
from blogtune_assets.core.manifest import MANIFEST
from blogtune_assets.core.machine_cache import build_once, cache_root
from blogtune_assets.core.profiles import SAMPLE_BLOG, Profile
from blogtune_assets.core.tiny_model import build_key, build_tiny_model
from blogtune_assets.core.tokenizer_source import EMBEDDED_TOKENIZERS, folder_hash, tiny_tokenizer_dir

# What a base needs, and nothing that runs code: weights only as safetensors.
HUB_PATTERNS = ["*.safetensors", "*.safetensors.index.json", "*.json", "*.jinja", "*.txt", "*.model", "*.tiktoken"]
# Weights torch.load unpickles; named in the error when a local base holds only these.
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl"}


class BaseModelUnavailable(RuntimeError):
    pass


def hub_snapshot(repo_id: str) -> tuple[Path, str]:
    """A hub model's local folder through the Hugging Face cache (HF_HOME, HF_TOKEN), and its revision."""
    local = Path(repo_id).expanduser()
    if local.is_dir():
        require_safetensors(local, repo_id)
        return local.resolve(), f"local:{folder_hash(local)}"
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, OSError) as err:
        raise BaseModelUnavailable(
            f"cannot fetch base model '{repo_id}': it is not in the Hugging Face cache and the hub cannot be "
            f"reached ({type(err).__name__}). Download it where there is network "
            f"(`hf download {repo_id}`) with the same HF_HOME, or set BLOGTUNE_BASE_MODEL / "
            f"BLOGTUNE_MERGE_BASE_MODEL to a local folder. The offline default is BLOGTUNE_PROFILE=tiny."
        ) from err
    require_safetensors(folder, repo_id)
    return folder, folder.name  # snapshot folders are named by commit hash


def require_safetensors(folder: Path, model_id: str) -> None:
    """A pickle checkpoint (pytorch_model.bin, .pt) runs code when it is loaded; safetensors cannot."""
    if list(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    holds = f"only pickle checkpoints ({', '.join(pickles)}), which can run code when loaded" if pickles else "no weights"
    raise BaseModelUnavailable(
        f"base model '{model_id}' has no safetensors weights, it holds {holds}. blogtune loads safetensors only: "
        f"convert it (save_pretrained(..., safe_serialization=True)) or set BLOGTUNE_BASE_MODEL / "
        f"BLOGTUNE_MERGE_BASE_MODEL to a model that ships safetensors."
    )


def describe(folder: Path) -> dict:
    """Facts about a checkpoint read from its config and tokenizer, without loading weights."""
    config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    shards = sorted(folder.glob("*.safetensors"))
    weights = sum(p.stat().st_size for p in shards)
    return {
        "architecture": (config.architectures or [config.model_type])[0],
        "model_type": config.model_type,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "vocab_size": config.vocab_size,
        "dtype": str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", "")),
        "quantization": _quant_method(getattr(config, "quantization_config", None)),
        "parameters": parameter_count(shards),
        "weights_bytes": weights,
        "tokenizer_class": type(tokenizer).__name__,
        "tokenizer_size": len(tokenizer),
        "eos_token": tokenizer.eos_token,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token": tokenizer.pad_token,
        "pad_token_id": tokenizer.pad_token_id,
        "chat_template": tokenizer.chat_template or "",
    }


def parameter_count(shards: list[Path]) -> int:
    """Elements stored in the checkpoint, read from safetensors headers without loading tensors.

    For a 4-bit checkpoint this counts packed storage, not the original parameters.
    """
    total = 0
    for shard in shards:
        with safe_open(shard, framework="pt") as f:
            for name in f.keys():
                total += math.prod(f.get_slice(name).get_shape())
    return total


def _quant_method(quantization_config) -> str:
    if not quantization_config:
        return "none"
    if isinstance(quantization_config, dict):
        return str(quantization_config.get("quant_method", "unknown"))
    return str(getattr(quantization_config, "quant_method", "unknown"))


def resolve_base(profile: Profile, out_dir: Path, train_id: str | None = None, merge_id: str | None = None, log=print) -> dict:
    """Write manifest.json (and, for the tiny profile, the model itself) into out_dir."""
    if profile.embedded:
        model_dir = out_dir / "model"
        build = EMBEDDED_BUILDS[profile.embedded_base]
        key = build.key()
        stats = _embedded_via_cache(profile.embedded_base, key, model_dir, build.build, log)
        # Relative: the folder is renamed when it is published.
        entry = {"id": build.model_id, "path": "model", "revision": f"build:{key}"}
        manifest = {"profile": profile.name, "build_key": key, "train_base": entry, "merge_base": entry, "pretraining": stats}
    else:
        train_id = train_id or profile.base_model_id
        merge_id = merge_id or profile.merge_base_model_id
        train_dir, train_rev = hub_snapshot(train_id)
        merge_dir, merge_rev = hub_snapshot(merge_id)
        manifest = {
            "profile": profile.name,
            "train_base": {"id": train_id, "path": str(train_dir), "revision": train_rev},
            "merge_base": {"id": merge_id, "path": str(merge_dir), "revision": merge_rev},
        }
    for role in ("train_base", "merge_base"):
        manifest[role] = {**manifest[role], "facts": describe(out_dir / manifest[role]["path"])}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    return manifest


def _build_tiny(out_dir: Path, log) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir(log), trust_remote_code=False)
    return build_tiny_model(SAMPLE_BLOG, out_dir, tokenizer, log=log)


@dataclass(frozen=True)
class EmbeddedBuild:
    """A base built locally where no weights can be downloaded."""

    model_id: str
    key: Callable[[], str]  # changes only when what gets built changes
    build: Callable[[Path, Callable], dict]  # (out_dir, log) -> stats


EMBEDDED_BUILDS = {
    "tiny": EmbeddedBuild("blogtune/tiny-qwen3", lambda: build_key(SAMPLE_BLOG), _build_tiny),
    "qwen3-shape": EmbeddedBuild("blogtune/qwen3-shape", qwen3_shape.build_key, qwen3_shape.build_qwen3_shape_model),
}
# The tokenizers are listed apart, in tokenizer_source, so sft_dataset counts tokens without importing this
# module (torch, transformers); an embedded base added to one list and not the other fails here, on import.
assert EMBEDDED_BUILDS.keys() == EMBEDDED_TOKENIZERS.keys(), "each embedded base needs a build and a tokenizer"


def embedded_build_key(profile: Profile) -> str | None:
    return EMBEDDED_BUILDS[profile.embedded_base].key() if profile.embedded else None


def _embedded_via_cache(name: str, key: str, model_dir: Path, build: Callable, log) -> dict:
    """An embedded base, built once per machine: the build is seeded, so its key names its result.

    BLOGTUNE_CACHE (default ~/.cache/blogtune) holds it (`tiny_base/<key>`, `qwen3_shape_base/<key>`);
    every BLOGTUNE_HOME, test session and demo on the machine then copies it instead of building again
    (the tiny base pretrains for about a minute on 2 cores).
    """
    cached = cache_root() / f"{name.replace('-', '_')}_base" / key

    def build_into(staging: Path) -> None:
        (staging / "stats.json").write_text(json.dumps(build(staging / "model", log)))

    built = build_once(cached, "stats.json", build_into)
    shutil.copytree(cached / "model", model_dir)
    stats = json.loads((cached / "stats.json").read_text())
    if built:
        return stats
    log(f"embedded model {key} copied from {cached}")
    return {**stats, "copied_from_machine_cache": True}

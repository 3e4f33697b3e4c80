"""Qwen3's tokenizer, built offline from the vocabulary llama.cpp ships.

The llama-cpp-python source distribution (which `make` downloads to build its wheel) carries
`vendor/llama.cpp/models/ggml-vocab-qwen2.gguf`: Qwen2/Qwen3's 151,643 byte-level BPE tokens, their
merges and the `qwen2` pre-tokenizer, with llama.cpp's own test vectors beside it. Qwen3 uses that BPE
unchanged and adds 26 tokens at 151643-151668 (table below, from Qwen/Qwen3-4B's tokenizer_config.json).
Built once per machine and cached under BLOGTUNE_CACHE, like the embedded tiny base.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import Tokenizer

from blogtune_assets.core.code_version import code_version
from blogtune_assets.core.environment import read
from blogtune_assets.core.machine_cache import build_once, cache_root

if TYPE_CHECKING:  # finding the cached tokenizer (sft_dataset's step) needs neither; building it does
    from transformers import PreTrainedTokenizerFast

# What builds the tokenizer (trl supplies the chat template); a change to any of it rebuilds it.
QWEN3_TOKENIZER_VERSION = code_version("blogtune_assets.core.qwen3_tokenizer", packages=("tokenizers", "transformers", "trl"))
VOCAB_FILE = "ggml-vocab-qwen2.gguf"
BPE_SIZE = 151643  # ids below are BPE tokens; Qwen3's added tokens start here
# Qwen3's added tokens (Qwen/Qwen3-4B tokenizer_config.json, added_tokens_decoder): id, text, special.
# The tool, FIM and thinking tags are added but not special: they survive decoding.
ADDED_TOKENS = [
    (151643, "<|endoftext|>", True),
    (151644, "<|im_start|>", True),
    (151645, "<|im_end|>", True),
    (151646, "<|object_ref_start|>", True),
    (151647, "<|object_ref_end|>", True),
    (151648, "<|box_start|>", True),
    (151649, "<|box_end|>", True),
    (151650, "<|quad_start|>", True),
    (151651, "<|quad_end|>", True),
    (151652, "<|vision_start|>", True),
    (151653, "<|vision_end|>", True),
    (151654, "<|vision_pad|>", True),
    (151655, "<|image_pad|>", True),
    (151656, "<|video_pad|>", True),
    (151657, "<tool_call>", False),
    (151658, "</tool_call>", False),
    (151659, "<|fim_prefix|>", False),
    (151660, "<|fim_middle|>", False),
    (151661, "<|fim_suffix|>", False),
    (151662, "<|fim_pad|>", False),
    (151663, "<|repo_name|>", False),
    (151664, "<|file_sep|>", False),
    (151665, "<tool_response>", False),
    (151666, "</tool_response>", False),
    (151667, "<think>", False),
    (151668, "</think>", False),
]
MODEL_MAX_LENGTH = 131072


class QwenVocabularyUnavailable(FileNotFoundError):
    pass


def llama_cpp_sdist() -> Path:
    """The llama-cpp-python source distribution `make` keeps (BLOGTUNE_LLAMA_CPP_SDIST overrides)."""
    return read("BLOGTUNE_LLAMA_CPP_SDIST") or Path("~/.cache/blogtune/sdist").expanduser() / f"llama_cpp_python-{version('llama_cpp_python')}.tar.gz"


def extract_vocab(sdist: Path, dest: Path) -> Path:
    """ggml-vocab-qwen2.gguf and its test vectors (.inp/.out) from the sdist, into dest."""
    if not sdist.is_file():
        raise QwenVocabularyUnavailable(
            f"the llama-cpp-python source distribution is not at {sdist}: it carries Qwen's vocabulary. "
            f"Run `make setup` (it downloads it once per machine) or set BLOGTUNE_LLAMA_CPP_SDIST to the .tar.gz."
        )
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {VOCAB_FILE, f"{VOCAB_FILE}.inp", f"{VOCAB_FILE}.out"}
    with tarfile.open(sdist) as tar:
        for member in tar:
            name = member.name.rsplit("/", 1)[-1]
            if member.isfile() and name in wanted and member.name.endswith(f"vendor/llama.cpp/models/{name}"):
                (dest / name).write_bytes(tar.extractfile(member).read())
                wanted.discard(name)
    if wanted:
        raise QwenVocabularyUnavailable(f"{sdist} has no vendor/llama.cpp/models/{sorted(wanted)[0]}")
    return dest / VOCAB_FILE


def build_qwen3_tokenizer(vocab_gguf: Path) -> PreTrainedTokenizerFast:
    """Qwen3's tokenizer.json as the hub ships it, from the BPE in llama.cpp's vocabulary file."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen3_chat_template

    from_gguf = AutoTokenizer.from_pretrained(vocab_gguf.parent, gguf_file=vocab_gguf.name, trust_remote_code=False)
    spec = json.loads(from_gguf.backend_tokenizer.to_str())
    # The GGUF pads the vocabulary to 151,936 with "[PADn]" entries that would match post text; Qwen3 has none.
    spec["model"]["vocab"] = {token: i for token, i in spec["model"]["vocab"].items() if i < BPE_SIZE}
    spec["added_tokens"] = [
        {"id": i, "content": text, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": special}
        for i, text, special in ADDED_TOKENS
    ]
    spec["normalizer"] = {"type": "NFC"}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    spec["decoder"] = spec["post_processor"] = byte_level
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        eos_token="<|im_end|>",
        # pad must differ from eos, or the eos label is masked and the model never learns to stop.
        pad_token="<|endoftext|>",
        chat_template=qwen3_chat_template,
        model_max_length=MODEL_MAX_LENGTH,
        clean_up_tokenization_spaces=False,
    )


def qwen3_tokenizer_dir(log=print) -> Path:
    """A folder holding Qwen3's tokenizer (loadable with AutoTokenizer), built on first use."""
    sdist = llama_cpp_sdist()
    key = hashlib.sha256(f"{QWEN3_TOKENIZER_VERSION}:{sdist.name}".encode()).hexdigest()[:16]
    cached = cache_root() / "qwen3_tokenizer" / key

    def build(staging: Path) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            vocab = extract_vocab(sdist, Path(scratch))
            build_qwen3_tokenizer(vocab).save_pretrained(staging)
            for name in (VOCAB_FILE, f"{VOCAB_FILE}.inp", f"{VOCAB_FILE}.out"):
                shutil.copy(Path(scratch) / name, staging / name)  # llama.cpp's vocabulary and test vectors, for the tests

    if build_once(cached, "tokenizer.json", build):
        log(f"Qwen3 tokenizer built from {sdist.name} into {cached}")
    return cached

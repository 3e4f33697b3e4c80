"""The tokenizer a profile trains with, found without any weights and without torch or transformers.

sft_dataset counts tokens with it, so a person sees what their blog costs before a base is fetched, in a
step that starts in seconds: a cached tokenizer is found and loaded with `tokenizers` alone. Only building
one that is not cached yet (the tiny base's BPE, Qwen3's from llama.cpp's vocabulary) imports transformers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from blogtune_assets.core.machine_cache import build_once, cache_root
from blogtune_assets.core.profiles import SAMPLE_BLOG, Profile
from blogtune_assets.core.qwen3_tokenizer import qwen3_tokenizer_dir
from blogtune_assets.core.tiny_model import build_key, build_tiny_tokenizer

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


class TokenizerUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class CountingTokenizer:
    folder: Path
    source: str  # where it came from, for the metadata
    revision: str  # changes when the tokenizer does: earlier token counts are reused only under the same one

    def load(self) -> Tokenizer:
        """The fast tokenizer itself (its control tokens included), as transformers' would wrap it."""
        return Tokenizer.from_file(str(self.folder / "tokenizer.json"))


def folder_hash(folder: Path, names: tuple[str, ...] = ()) -> str:
    """A content hash of the folder's files (only those named, if names are given)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and (not names or p.name in names)):
        digest.update(path.name.encode())
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def tiny_tokenizer_dir(log=print) -> Path:
    """The tiny base's tokenizer, built and cached before (and without) its model."""
    cached = cache_root() / "tiny_tokenizer" / build_key(SAMPLE_BLOG)
    if build_once(cached, "tokenizer.json", lambda staging: build_tiny_tokenizer(SAMPLE_BLOG).save_pretrained(staging)):
        log(f"tiny tokenizer trained into {cached}")
    return cached


# An embedded base's tokenizer folder, by the base's name: (log) -> folder.
EMBEDDED_TOKENIZERS: dict[str, Callable[[Callable], Path]] = {"tiny": tiny_tokenizer_dir, "qwen3-shape": qwen3_tokenizer_dir}


def counting_tokenizer(profile: Profile, base_override: str = "", log=print) -> CountingTokenizer:
    """The tokenizer the model will train with, found without downloading or building any weights.

    Offline, Qwen3's own tokenizer stands in for the hub's, for the profile's own Qwen3 base only.
    """
    if profile.embedded:
        folder, source = EMBEDDED_TOKENIZERS[profile.embedded_base](log), f"the embedded {profile.embedded_base} base's"
    else:
        model_id = base_override or profile.base_model_id
        folder, source = _hub_tokenizer(model_id), f"{model_id}'s, through the Hugging Face cache"
        if folder is None and not base_override:
            folder, source = qwen3_tokenizer_dir(log), "Qwen3's, built offline from llama.cpp's vocabulary (the hub is unreachable)"
        if folder is None:
            raise TokenizerUnavailable(
                f"no tokenizer for '{model_id}': it is not in the Hugging Face cache and the hub cannot be reached, "
                f"and sft_dataset counts tokens with the base's tokenizer. Download it where there is network "
                f"(`hf download {model_id}`) with the same HF_HOME, or set BLOGTUNE_BASE_MODEL to a local folder."
            )
    if not (folder / "tokenizer.json").is_file():
        raise TokenizerUnavailable(
            f"{folder} has no tokenizer.json, the fast tokenizer sft_dataset counts with (it holds only "
            f"{', '.join(sorted(p.name for p in folder.iterdir())) or 'nothing'}). Save the base's tokenizer with "
            f"transformers (`AutoTokenizer.from_pretrained(folder).save_pretrained(folder)` writes it)."
        )
    return CountingTokenizer(folder, source, folder_hash(folder, TOKENIZER_FILES))


def _hub_tokenizer(model_id: str) -> Path | None:
    """The base's tokenizer files only (a few MB, never weights): a local folder, the cache, or the hub."""
    local = Path(model_id).expanduser()
    if local.is_dir():
        return local
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        return Path(snapshot_download(model_id, allow_patterns=list(TOKENIZER_FILES)))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, OSError):
        return None

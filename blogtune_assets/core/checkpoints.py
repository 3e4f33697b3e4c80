"""Which training checkpoint a resumed run may trust.

A process killed while the trainer saves (SIGKILL, power cut, OOM killer)
leaves a checkpoint folder with some files missing or cut short. Resuming
from it would crash, or worse, load a truncated optimizer. Such folders are
recognised and removed, and training resumes from the newest whole one.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

from safetensors import safe_open

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# torch.save writes zip archives; a cut-short one has no central directory.
TORCH_FILES = ("optimizer.pt", "scheduler.pt")


def checkpoint_problem(folder: Path) -> str | None:
    """Why the checkpoint cannot be resumed from, or None when it is whole."""
    step = int(CHECKPOINT.match(folder.name)[1])
    try:
        state = json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return "trainer_state.json missing or unreadable"
    if state.get("global_step") != step:
        return f"trainer_state.json says step {state.get('global_step')}, not {step}"
    try:
        with safe_open(folder / "adapter_model.safetensors", framework="pt") as weights:
            if not list(weights.keys()):
                return "adapter_model.safetensors holds no tensors"
    except Exception as err:  # safetensors raises its own error types for a cut-short header
        return f"adapter_model.safetensors unreadable: {err}"
    for name in TORCH_FILES:
        if not zipfile.is_zipfile(folder / name):
            return f"{name} missing or cut short"
    return None


def newest_complete_checkpoint(checkpoint_dir: Path, emit: Callable[[str], None]) -> Path | None:
    """The newest whole checkpoint; half-written ones newer than it are reported and deleted."""
    found = sorted(
        (p for p in checkpoint_dir.glob("checkpoint-*") if p.is_dir() and CHECKPOINT.match(p.name)),
        key=lambda p: int(CHECKPOINT.match(p.name)[1]),
        reverse=True,
    )
    for folder in found:
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        emit(f"skipping half-written {folder.name}: {problem}")
        shutil.rmtree(folder, ignore_errors=True)
    return None

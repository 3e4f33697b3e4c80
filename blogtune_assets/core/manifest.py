"""The base_model asset's `manifest.json`: which folders hold the training and merge bases, and what they are.

Its own module because every model asset reads it, and reading JSON must not import what building a base does.
"""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST = "manifest.json"


def read_manifest(folder: Path) -> dict:
    """The manifest with every base path made absolute."""
    manifest = json.loads((folder / MANIFEST).read_text())
    for role in ("train_base", "merge_base"):
        manifest[role]["path"] = str(folder / manifest[role]["path"])  # an absolute path stays as it is
    return manifest

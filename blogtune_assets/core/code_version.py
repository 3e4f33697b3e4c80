"""The version of the code behind a reusable result, so that a fix reaches results built before it.

Every reuse (posts parsed, text cleaned, tokens counted, an embedded base built) is keyed by its input's
content *and* by this: a hash of the source of the modules that produce it and the versions of the
libraries they call. Editing liquid.py re-cleans every post; a new tokenizers release recounts every token.
"""

from __future__ import annotations

import hashlib
import importlib.util
from importlib.metadata import version
from pathlib import Path


def code_version(*modules: str, packages: tuple[str, ...] = ()) -> str:
    """16 hex digits over the modules' source files (found, not imported) and the packages' versions."""
    digest = hashlib.sha256()
    for name in modules:
        digest.update(name.encode() + b"\0" + Path(importlib.util.find_spec(name).origin).read_bytes())
    for package in packages:
        digest.update(f"{package}=={version(package)}\n".encode())
    return digest.hexdigest()[:16]

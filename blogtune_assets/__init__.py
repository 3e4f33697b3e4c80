"""blogtune: a Jekyll blog in, its own fine-tuned language model out."""

from blogtune_assets.definitions import defs

__all__ = ["defs"]

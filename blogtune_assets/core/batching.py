"""How much of a padded batch is padding: the figure padding-free batching saves."""

from __future__ import annotations

import random

# transformers' LengthGroupedSampler sorts within mega-batches of 50 batches.
LENGTH_GROUP = 50


def padded_tokens(lengths: list[int], batch: int) -> int:
    """Tokens computed when consecutive `batch` examples are padded to the longest of them."""
    return sum(batch * max(lengths[i : i + batch]) for i in range(0, len(lengths), batch))


def length_grouped(order: list[int], batch: int) -> list[int]:
    """`order` as the length-grouped sampler draws it: longest first within each mega-batch."""
    mega = batch * LENGTH_GROUP
    return [n for i in range(0, len(order), mega) for n in sorted(order[i : i + mega], reverse=True)]


def padding_share(lengths: list[int], batch: int, *, grouped: bool, seed: int = 42) -> float:
    """Share of computed tokens that are padding over one epoch of padded batches, in a seeded random order
    (the trainer's own order differs, so for random batches this is an estimate of the same distribution)."""
    order = lengths[:]
    random.Random(seed).shuffle(order)
    if grouped:
        order = length_grouped(order, batch)
    computed = padded_tokens(order, batch)
    return 1 - sum(lengths) / computed if computed else 0.0

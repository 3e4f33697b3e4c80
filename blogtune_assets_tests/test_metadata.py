"""What the Dagster UI shows without a click: markdown under its fold limit."""

import random

from blogtune_assets.assets.metadata import UNFOLDED_CHARS, loss_at_a_glance_md, md_table
from blogtune_assets.core.sft import length_histogram


def test_the_loss_at_a_glance_stays_unfolded_at_the_reference_runs_length():
    # The reference run: ~2,680 optimizer steps logged every 10, with noisy per-batch losses.
    rng = random.Random(0)
    history = [{"step": s, "loss": 1.4 + 0.8 * rng.random()} for s in range(10, 2690, 10)] + [{"step": 2680, "eval_loss": 1.52}]
    metrics = {"base_eval_loss": 1.9, "eval_loss": 1.52, "base_train_split_loss": 1.8, "train_split_loss": 1.41, "train_split_loss_examples": 200}
    md = loss_at_a_glance_md(history, metrics).value
    assert len(md) < UNFOLDED_CHARS, len(md)
    assert "data:image/png;base64," in md and "| eval split | 1.9 | 1.52 |" in md


def test_the_length_table_stays_unfolded():
    rng = random.Random(0)
    hist = length_histogram([rng.randint(10, 9000) for _ in range(21434)], max_length=4096)
    assert len(md_table(["tokens", "examples"], hist).value) < UNFOLDED_CHARS

"""Everything Dagster loads: assets, checks, resources, jobs."""

import os

import dagster as dg

from blogtune_assets.assets.sft_dataset import sft_dataset, split_has_no_shared_titles
from blogtune_assets.assets.gguf_q4km import gguf_matches_hf, learned_to_stop_after_a_post, gguf_q4km, q4_k_m_perplexity_close_to_intermediate
from blogtune_assets.assets.model import base_model, lora_adapter, merged_logits_match_adapter, merged_model
from blogtune_assets.assets.posts import cleaned_posts, no_liquid_left, raw_posts
from blogtune_assets.automation import RETRAIN_JOB, new_posts_sensor, weekly_retrain_schedule
from blogtune_assets.compute import executor
from blogtune_assets.resources import from_env

# The run log is blogtune's own progress lines (step, loss, tokens/s, ETA): tqdm bars from transformers,
# the hub and datasets would interleave carriage returns with them. Set before any of those is imported,
# and inherited by every step process and the training process; a person can set them to 0.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

all_assets = [raw_posts, cleaned_posts, base_model, sft_dataset, lora_adapter, merged_model, gguf_q4km]
all_checks = [
    no_liquid_left,
    split_has_no_shared_titles,
    merged_logits_match_adapter,
    gguf_matches_hf,
    q4_k_m_perplexity_close_to_intermediate,
    learned_to_stop_after_a_post,
]

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[RETRAIN_JOB],
    sensors=[new_posts_sensor],
    schedules=[weekly_retrain_schedule],
    resources=from_env(),
    executor=executor(),
)

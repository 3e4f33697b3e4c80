"""blogtune: a Jekyll blog in, its own fine-tuned language model out.

Empty on purpose: Dagster loads `blogtune_assets.definitions`, and importing any other module
(a core module in a training process, say) does not load the definitions with it.
"""

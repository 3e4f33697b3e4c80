"""The qwen3-shape base is pretrained as a compact model over the rows its text uses, then widened.

That is only sound if the compact model's loss (its kept rows plus one constant logit for the zero
rows) is the widened 151,936-row model's true causal LM loss, for any weights.
"""

import torch
from transformers import AutoTokenizer, Qwen3ForCausalLM

from blogtune_assets.core.qwen3_shape import SHAPE, VOCAB_ROWS, compact_config, full_vocabulary_loss, widened
from blogtune_assets.core.tiny_model import qwen3_config


def test_the_compact_loss_is_the_widened_models_full_vocabulary_loss(qwen3_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir)
    config = qwen3_config(SHAPE, tokenizer, vocab_size=VOCAB_ROWS, bos_token_id=151643)
    text = tokenizer("Trying Rust 试试 Rust<|im_end|><|endoftext|>")["input_ids"]
    kept = torch.unique(torch.tensor(text + [151643, 151644, 151645, 151668, 9000, 120000]))
    torch.manual_seed(0)
    compact = Qwen3ForCausalLM(compact_config(config, kept)).eval()
    with torch.no_grad():  # the pad row starts at zero; give it a value, as pretraining would
        compact.get_input_embeddings().weight.normal_(0, 0.5)
    batch = torch.tensor([text])
    with torch.no_grad():
        compact_loss = full_vocabulary_loss(VOCAB_ROWS - len(kept))(compact, torch.searchsorted(kept, batch))
        full = widened(compact, kept, config)
        full_loss = full(input_ids=batch, labels=batch).loss
    assert abs(compact_loss.item() - full_loss.item()) < 1e-4, (compact_loss.item(), full_loss.item())
    rows = full.get_input_embeddings().weight
    assert rows.shape[0] == VOCAB_ROWS and int((rows.abs().sum(1) > 0).sum()) == len(kept)
    assert full.lm_head.weight.data_ptr() == rows.data_ptr()  # still tied after widening

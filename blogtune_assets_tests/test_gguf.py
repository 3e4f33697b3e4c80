"""HF → GGUF → Q4_K_M on the tiny model, run in llama.cpp for real."""

import gguf
import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen3ForCausalLM

from blogtune_assets.core.gguf_export import (
    UnsupportedArchitecture,
    convert_to_gguf,
    quantize_q4_k_m,
    summarize,
)
from blogtune_assets.core.gguf_verify import (
    generate_posts,
    gguf_greedy,
    hf_greedy_at_bf16,
    llama_tokenize,
    load_llama,
    perplexity,
)
from blogtune_assets.core.merge import chat_prompt
from blogtune_assets.core.modelfile import modelfile
from blogtune_assets.core.sft import read_jsonl
from blogtune_assets.core.tiny_model import TinyShape, qwen3_config

MIXED = "Hello 世界! 🎉 Rust: fn main() { println!(\"{}\", 2 + 3); }\n\n  中文和English混合, tabs\tand  spaces 123456 <think>"


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory, tiny_base_dir):
    folder = tmp_path_factory.mktemp("gguf")
    converted = convert_to_gguf(tiny_base_dir, folder / "bf16.gguf", name="tiny", base_model="blogtune/tiny-qwen3")
    quantize_q4_k_m(converted.path, folder / "q4.gguf")
    return folder / "bf16.gguf", folder / "q4.gguf"


def test_headers_say_bf16_then_q4_k_m(ggufs):
    bf16, q4 = ggufs
    assert summarize(bf16).file_type == gguf.LlamaFileType.MOSTLY_BF16
    q = summarize(q4)
    assert q.file_type == 15  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    assert q.tensor_types.get("Q4_K", 0) > 0 and q.tensor_types.get("Q6_K", 0) > 0
    assert 4.5 < q.bits_per_weight < 7
    reader = gguf.GGUFReader(bf16)
    names = {t.name: t.tensor_type.name for t in reader.tensors}
    assert "output.weight" not in names  # tied embeddings: llama.cpp reuses token_embd
    assert names["output_norm.weight"] == "F32" and names["blk.0.attn_q_norm.weight"] == "F32"
    assert names["blk.0.attn_q.weight"] == "BF16"
    pre = reader.get_field("tokenizer.ggml.pre")
    assert bytes(pre.parts[pre.data[0]]).decode() == "qwen2"


def test_llama_cpp_loads_without_pretokenizer_warnings_and_tokenizes_like_hf(ggufs, tiny_base_dir, capfd):
    _, q4 = ggufs
    from llama_cpp import Llama

    llm = Llama(model_path=str(q4), n_ctx=256, verbose=True)
    try:
        log = capfd.readouterr().err
        assert "llama_model_loader" in log  # the C++ log really was captured
        assert "missing pre-tokenizer" not in log and "GENERATION QUALITY WILL BE DEGRADED" not in log
        hf = AutoTokenizer.from_pretrained(tiny_base_dir)
        for text in (MIXED, "<|im_start|>user\n标题<|im_end|>\n", "  leading spaces, trailing  \n\n\n"):
            assert llama_tokenize(llm, text) == hf(text, add_special_tokens=False)["input_ids"], text
    finally:
        llm.close()


def test_bf16_gguf_reproduces_hf_greedy_tokens(ggufs, tiny_base_dir, sample_dataset):
    bf16, _ = ggufs
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    title = read_jsonl(sample_dataset / "eval.jsonl")[0]["conversations"][0]["content"]
    prompt = tokenizer(chat_prompt(tokenizer, title), add_special_tokens=False)["input_ids"]
    expected = hf_greedy_at_bf16(tiny_base_dir, prompt, 24)
    with load_llama(bf16, n_ctx=256, logits_all=True) as llm:
        assert gguf_greedy(llm, prompt, 24) == expected


def test_q4_k_m_perplexity_stays_close_to_bf16(ggufs, tiny_base_dir, sample_dataset):
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    texts = [tokenizer.apply_chat_template(e["conversations"], tokenize=False) for e in read_jsonl(sample_dataset / "eval.jsonl")]
    results = []
    for path in ggufs:
        with load_llama(path, n_ctx=512, logits_all=True) as llm:
            results.append(perplexity(llm, [llama_tokenize(llm, t) for t in texts]))
    bf16_ppl, q4_ppl = results
    assert 1 < bf16_ppl < 4096  # better than uniform over the vocabulary
    assert q4_ppl <= bf16_ppl * 1.15


def test_generation_through_the_embedded_template_reports_how_it_ended(ggufs):
    _, q4 = ggufs
    with load_llama(q4, n_ctx=256) as llm:
        [sample] = generate_posts(llm, ["Trying Rust"], max_tokens=8, temperature=0.0)
    assert sample.finish_reason in {"stop", "length"} and 0 < sample.tokens <= 8


def test_modelfile_renders_the_training_prompt(tiny_base_dir):
    text = modelfile("model-Q4_K_M.gguf", 1024)
    for stop in ("<|im_end|>", "<|im_start|>", "<|endoftext|>"):
        assert f'PARAMETER stop "{stop}"' in text
    assert "PARAMETER num_ctx 1024" in text and "SYSTEM" not in text
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    # ollama's Go template for one user message, rendered by hand
    rendered = template.replace("{{- range .Messages }}", "").replace("{{ end }}", "")
    rendered = rendered.replace("{{ .Role }}", "user").replace("{{ .Content }}", "Trying Rust")
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    assert rendered == chat_prompt(tokenizer, "Trying Rust")


def test_unsupported_architecture_is_a_clear_error(tmp_path):
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "llama")
    with pytest.raises(UnsupportedArchitecture, match="cannot convert LlamaForCausalLM"):
        convert_to_gguf(tmp_path / "llama", tmp_path / "x.gguf", name="x")
    assert not (tmp_path / "x.gguf").exists()


def test_dimensions_not_multiple_of_256_fall_back_and_are_reported(tmp_path, tiny_base_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    shape = TinyShape(hidden_size=192, intermediate_size=320, num_attention_heads=3, num_key_value_heads=1, head_dim=64)
    torch.manual_seed(0)
    Qwen3ForCausalLM(qwen3_config(shape, tokenizer)).save_pretrained(tmp_path / "odd")
    tokenizer.save_pretrained(tmp_path / "odd")
    convert_to_gguf(tmp_path / "odd", tmp_path / "odd.gguf", name="odd")
    quantize_q4_k_m(tmp_path / "odd.gguf", tmp_path / "odd-q4.gguf")
    types = summarize(tmp_path / "odd-q4.gguf").tensor_types
    assert summarize(tmp_path / "odd-q4.gguf").file_type == 15
    assert not types.get("Q4_K") and not types.get("Q6_K")  # rows of 192/320 cannot hold 256-blocks
    assert set(types) - {"F32"} <= {"Q5_0", "Q5_1", "Q8_0", "Q4_0", "Q4_1", "IQ4_NL", "BF16", "F16"}
    with load_llama(tmp_path / "odd-q4.gguf", n_ctx=64) as llm:
        assert llm.n_vocab() == len(tokenizer)

"""HF → GGUF → Q4_K_M on the tiny model, run in llama.cpp for real."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf.quants import dequantize
from safetensors.torch import load_file
from tokenizers import AddedToken
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen3ForCausalLM

from blogtune_assets.assets.gguf_q4km import Q4_NAME, gguf_matches_hf
from blogtune_assets.core.gguf_export import (
    MissingHyperparameter,
    UnsupportedArchitecture,
    convert_to_gguf,
    quantize_q4_k_m,
    summarize,
)
from blogtune_assets.core.gguf_verify import (
    TOKENIZER_PROBE,
    agreement_with_hf,
    compare_logits,
    generate_posts,
    gguf_intermediate,
    gguf_metadata_mismatches,
    gguf_next_token_logits,
    hf_logits_at_precision,
    llama_tokenize,
    load_llama,
    perplexity,
)
from blogtune_assets.core.merge import chat_prompt, hf_stop_stats
from blogtune_assets.core.chat_tokens import ChatEncoder
from blogtune_assets.core.tiny_tokenizer import IM_END
from blogtune_assets.core.stopping import end_of_body_prefixes, learned_to_stop, measure_stopping
from blogtune_assets.core.modelfile import modelfile
from blogtune_assets.core.sft import read_jsonl, stop_conversations
from blogtune_assets.core.tiny_model import TinyShape, qwen3_config
from blogtune_assets.core.tiny_tokenizer import ENDOFTEXT

MIXED = "Hello 世界! 🎉 Rust: fn main() { println!(\"{}\", 2 + 3); }\n\n  中文和English混合, tabs\tand  spaces 123456 <think>"


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory, tiny_base_dir):
    folder = tmp_path_factory.mktemp("gguf")
    converted = convert_to_gguf(tiny_base_dir, folder / "f16.gguf", name="tiny", base_model="blogtune/tiny-qwen3")
    quantize_q4_k_m(converted.path, folder / "q4.gguf")
    return folder / "f16.gguf", folder / "q4.gguf"


def test_headers_say_f16_for_the_fp32_tiny_merge_then_q4_k_m(ggufs):
    f16, q4 = ggufs
    assert summarize(f16).file_type == gguf.LlamaFileType.MOSTLY_F16  # llama.cpp's choice for an fp32 model
    assert gguf_intermediate(f16).torch_dtype == torch.float16  # what the logit check rounds HF weights to
    with pytest.raises(ValueError, match="not F16 or BF16"):
        gguf_intermediate(q4)
    q = summarize(q4)
    assert q.file_type == 15  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    assert q.tensor_types.get("Q4_K", 0) > 0 and q.tensor_types.get("Q6_K", 0) > 0
    assert 4.5 < q.bits_per_weight < 7
    reader = gguf.GGUFReader(f16)
    names = {t.name: t.tensor_type.name for t in reader.tensors}
    assert "output.weight" not in names  # tied embeddings: llama.cpp reuses token_embd
    assert names["output_norm.weight"] == "F32" and names["blk.0.attn_q_norm.weight"] == "F32"
    assert names["blk.0.attn_q.weight"] == "F16"
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


def _eval_texts(model_dir, dataset) -> list[str]:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return [tokenizer.apply_chat_template(e["conversations"], tokenize=False) for e in read_jsonl(dataset / "eval.jsonl")]


def _variant(src: Path, dest: Path, edit) -> Path:
    """A copy of the model at src with edit(model, tokenizer_spec) applied, saved like a checkpoint."""
    model = AutoModelForCausalLM.from_pretrained(src)
    spec = json.loads((src / "tokenizer.json").read_text())
    with torch.no_grad():
        edit(model, spec)
    model.save_pretrained(dest)
    AutoTokenizer.from_pretrained(src).save_pretrained(dest)
    (dest / "tokenizer.json").write_text(json.dumps(spec))
    return dest


def _perturbed(model, spec, relative=1e-6):
    """Every weight moved by a relative 1e-6, as another CPU's rounding would move it."""
    generator = torch.Generator().manual_seed(0)
    for p in model.parameters():
        p.mul_(1 + relative * torch.randn(p.shape, generator=generator))


def test_intermediate_gguf_agrees_with_hf_within_tolerance(ggufs, tiny_base_dir, sample_dataset):
    intermediate, _ = ggufs
    result = agreement_with_hf(intermediate, tiny_base_dir, _eval_texts(tiny_base_dir, sample_dataset))
    assert result.passed, result
    assert result.logits.decisive_positions > 0  # top-1 really was compared somewhere


def test_logit_agreement_verdict_holds_under_a_1e_6_perturbation(ggufs, tiny_base_dir, sample_dataset, tmp_path):
    intermediate, _ = ggufs
    texts = _eval_texts(tiny_base_dir, sample_dataset)
    exact = agreement_with_hf(intermediate, tiny_base_dir, texts)
    moved = agreement_with_hf(intermediate, _variant(tiny_base_dir, tmp_path / "moved", _perturbed), texts)
    assert moved.passed == exact.passed is True
    assert abs(moved.logits.max_abs_diff - exact.logits.max_abs_diff) < exact.logits.tolerance / 10


def test_logit_agreement_fails_for_a_gguf_with_two_layers_swapped(tiny_base_dir, sample_dataset, tmp_path):
    def swap_layers(model, spec):
        layers = model.model.layers
        first, second = layers[1].state_dict(), layers[2].state_dict()
        layers[1].load_state_dict(second)
        layers[2].load_state_dict(first)

    swapped = _variant(tiny_base_dir, tmp_path / "swapped", swap_layers)
    convert_to_gguf(swapped, tmp_path / "swapped.gguf", name="swapped")
    result = agreement_with_hf(tmp_path / "swapped.gguf", tiny_base_dir, _eval_texts(tiny_base_dir, sample_dataset))
    assert not result.passed and result.logits.max_abs_diff > result.logits.tolerance


def test_logit_agreement_fails_for_a_gguf_with_the_wrong_tokenizer(tiny_base_dir, sample_dataset, tmp_path):
    def swap_two_words(model, spec):
        vocab = spec["model"]["vocab"]
        vocab["Ġthe"], vocab["Ġand"] = vocab["Ġand"], vocab["Ġthe"]

    wrong = _variant(tiny_base_dir, tmp_path / "wrong", swap_two_words)
    convert_to_gguf(wrong, tmp_path / "wrong.gguf", name="wrong")
    result = agreement_with_hf(tmp_path / "wrong.gguf", tiny_base_dir, _eval_texts(tiny_base_dir, sample_dataset))
    assert not result.passed and result.tokenization_mismatches


def test_compare_logits_ignores_flips_only_at_near_ties():
    reference = np.array([[1.0, 1.05, -2.0], [3.0, 0.0, 0.0]])
    near_tie_flip = np.array([[1.04, 1.0, -2.0], [3.0, 0.0, 0.0]])
    assert compare_logits(reference, near_tie_flip, 0.1).passed
    decisive_flip = np.array([[1.0, 1.05, -2.0], [0.0, 3.0, 0.0]])
    result = compare_logits(reference, decisive_flip, 0.1)
    assert (result.decisive_positions, result.top1_disagreements, result.passed) == (1, 1, False)
    flat = np.zeros((3, 4))
    assert not compare_logits(flat, flat, 0.1).passed  # nothing decisive: agreement proves nothing


@pytest.fixture(scope="module")
def stop_setup(tiny_base_dir, sample_dataset):
    """Bodies the embedded base saw as ChatML in pretraining, and an untrained model of its shape as its "base"."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    trains = read_jsonl(sample_dataset / "train.jsonl")
    prefixes = end_of_body_prefixes(ChatEncoder(tokenizer.backend_tokenizer), stop_conversations([], trains), max_length=1024)
    torch.manual_seed(0)
    untrained = Qwen3ForCausalLM(qwen3_config(TinyShape(), tokenizer)).eval()
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    return prefixes, im_end, untrained, hf_stop_stats(untrained, prefixes, im_end)


def _gguf_stopping(path: Path, prefixes, im_end):
    with load_llama(path, n_ctx=1024) as llm:
        return measure_stopping(lambda p: gguf_next_token_logits(llm, p), prefixes, im_end)


def test_a_model_that_learned_chatml_passes_the_stop_check_in_llama_cpp(ggufs, stop_setup):
    _, q4 = ggufs
    prefixes, im_end, _, untrained = stop_setup
    learned = _gguf_stopping(q4, prefixes, im_end)
    assert learned.texts == len(prefixes) >= 8
    assert learned_to_stop(learned, untrained)
    assert not learned_to_stop(untrained, untrained)


def test_stop_verdict_holds_under_a_1e_6_perturbation(tiny_base_dir, stop_setup, tmp_path):
    prefixes, im_end, _, untrained = stop_setup
    exact = hf_stop_stats(AutoModelForCausalLM.from_pretrained(tiny_base_dir), prefixes, im_end)
    moved = hf_stop_stats(AutoModelForCausalLM.from_pretrained(_variant(tiny_base_dir, tmp_path / "moved", _perturbed)), prefixes, im_end)
    assert learned_to_stop(moved, untrained) == learned_to_stop(exact, untrained) is True
    assert moved.mean_log_probability == pytest.approx(exact.mean_log_probability, abs=1e-3)


def test_stop_check_fails_when_end_of_turn_was_never_trained(tiny_base_dir, stop_setup, tmp_path):
    prefixes, im_end, untrained_model, untrained = stop_setup

    def untrain_im_end(model, spec):  # its (tied) embedding row back at initialisation
        model.model.embed_tokens.weight[im_end] = untrained_model.model.embed_tokens.weight[im_end]

    broken = _variant(tiny_base_dir, tmp_path / "no-eos", untrain_im_end)
    convert_to_gguf(broken, tmp_path / "no-eos.gguf", name="no-eos")
    assert not learned_to_stop(_gguf_stopping(tmp_path / "no-eos.gguf", prefixes, im_end), untrained)


def test_q4_k_m_perplexity_stays_close_to_the_intermediate(ggufs, tiny_base_dir, sample_dataset):
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    texts = [tokenizer.apply_chat_template(e["conversations"], tokenize=False) for e in read_jsonl(sample_dataset / "eval.jsonl")]
    results = []
    for path in ggufs:
        with load_llama(path, n_ctx=512, logits_all=True) as llm:
            results.append(perplexity(llm, [llama_tokenize(llm, t) for t in texts]))
    f16_ppl, q4_ppl = results
    assert 1 < f16_ppl < 4096  # better than uniform over the vocabulary
    assert q4_ppl <= f16_ppl * 1.15


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


SMALL = TinyShape(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=32, intermediate_size=128)


def _small_model(dest: Path, tokenizer, dtype=torch.float32, edit=lambda model: None) -> Path:
    """A one-layer Qwen3 over the tiny tokenizer, saved in dtype with edit(model) applied."""
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(qwen3_config(SMALL, tokenizer)).to(dtype)
    with torch.no_grad():
        edit(model)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


def _edit_config(src: Path, dest: Path, edit) -> Path:
    """A copy of the model at src whose config.json, read as plain JSON, went through edit."""
    shutil.copytree(src, dest)
    config = json.loads((dest / "config.json").read_text())
    edit(config)
    (dest / "config.json").write_text(json.dumps(config))
    return dest


def _field(path: Path, key: str):
    field = gguf.GGUFReader(path).get_field(key)
    return None if field is None else field.contents()


def _tensor(path: Path, name: str) -> np.ndarray:
    [tensor] = [t for t in gguf.GGUFReader(path).tensors if t.name == name]
    return dequantize(tensor.data, tensor.tensor_type)


@pytest.fixture
def tokenizer(tiny_base_dir):
    return AutoTokenizer.from_pretrained(tiny_base_dir)


@pytest.mark.parametrize(
    "dtype, file_type, tensor_type",
    [
        (torch.float16, gguf.LlamaFileType.MOSTLY_F16, "F16"),
        (torch.bfloat16, gguf.LlamaFileType.MOSTLY_BF16, "BF16"),
        (torch.float32, gguf.LlamaFileType.MOSTLY_F16, "F16"),  # llama.cpp's default for an fp32 model
    ],
)
def test_intermediate_precision_follows_the_model(tmp_path, tokenizer, dtype, file_type, tensor_type):
    converted = convert_to_gguf(_small_model(tmp_path / "m", tokenizer, dtype), tmp_path / "m.gguf", name="m")
    assert converted.intermediate.file_type == summarize(converted.path).file_type == file_type
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(converted.path).tensors}
    assert types["blk.0.attn_q.weight"] == types["token_embd.weight"] == tensor_type
    assert types["blk.0.attn_norm.weight"] == "F32"


def test_an_fp16_update_smaller_than_a_bf16_step_survives_in_the_gguf(tmp_path, tokenizer):
    step = 2.0**-9  # at 1.0: four fp16 steps (2^-10 each), a quarter of a bf16 step (2^-7)

    def small_update(model):
        model.model.layers[0].self_attn.q_proj.weight[0, :2] = torch.tensor([1.0, 1.0 + step])

    source = _small_model(tmp_path / "fp16", tokenizer, torch.float16, small_update)
    convert_to_gguf(source, tmp_path / "m.gguf", name="m")
    written = _tensor(tmp_path / "m.gguf", "blk.0.attn_q.weight")
    assert written[0, 1] - written[0, 0] == step
    stored = load_file(source / "model.safetensors")["model.layers.0.self_attn.q_proj.weight"]
    np.testing.assert_array_equal(written, stored.float().numpy())


def test_bos_and_eot_ids_are_written_as_llama_cpp_writes_them(tmp_path, tokenizer):
    assert tokenizer.bos_token is None  # as Qwen3's: bos only in config.json
    endoftext = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    model = _edit_config(_small_model(tmp_path / "m", tokenizer), tmp_path / "bos", lambda c: c.update(bos_token_id=endoftext))
    path = convert_to_gguf(model, tmp_path / "m.gguf", name="m").path
    assert _field(path, gguf.Keys.Tokenizer.BOS_ID) == endoftext
    assert _field(path, gguf.Keys.Tokenizer.EOT_ID) == _field(path, gguf.Keys.Tokenizer.EOS_ID) == tokenizer.convert_tokens_to_ids(IM_END)
    assert _field(path, gguf.Keys.Tokenizer.ADD_BOS) is False


def test_control_looking_tokens_are_control_so_llama_cpp_loads_without_warning(tmp_path, tokenizer, capfd):
    # Qwen3 ships <|fim_prefix|> and its kin as added tokens that are not special.
    tokenizer.add_tokens([AddedToken("<|fim_prefix|>", special=False, normalized=False)])
    path = convert_to_gguf(_small_model(tmp_path / "m", tokenizer), tmp_path / "m.gguf", name="m").path
    types = _field(path, gguf.Keys.Tokenizer.TOKEN_TYPE)
    vocab = tokenizer.get_vocab()
    assert types[vocab["<|fim_prefix|>"]] == types[vocab[IM_END]] == gguf.TokenType.CONTROL
    assert types[vocab["<think>"]] == gguf.TokenType.USER_DEFINED  # added, not special, not <|…|>
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=64, verbose=True)
    llm.close()
    log = capfd.readouterr().err
    assert "llama_model_loader" in log  # the C++ log really was captured
    assert "control-looking token" not in log


YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
LINEAR = {"rope_type": "linear", "factor": 2.0}


@pytest.mark.parametrize(
    "key, scaling, written",
    [
        ("rope_parameters", YARN, ("yarn", 4.0, 32768)),  # transformers 5
        ("rope_scaling", {"type": "yarn", **YARN}, ("yarn", 4.0, 32768)),  # transformers 4, with rope_theta beside it
        ("rope_parameters", LINEAR, ("linear", 2.0, None)),
        ("rope_parameters", {"rope_type": "default"}, (None, None, None)),
    ],
)
def test_rope_scaling_is_written_when_the_config_has_it(tmp_path, tokenizer, key, scaling, written):
    def scale(config):
        theta = config.pop("rope_parameters")["rope_theta"]
        if key == "rope_parameters":
            config[key] = {**scaling, "rope_theta": theta}
        else:
            config[key], config["rope_theta"] = scaling, theta

    model = _edit_config(_small_model(tmp_path / "m", tokenizer), tmp_path / "scaled", scale)
    path = convert_to_gguf(model, tmp_path / "m.gguf", name="m").path
    rope = gguf.Keys.Rope
    keys = (rope.SCALING_TYPE, rope.SCALING_FACTOR, rope.SCALING_ORIG_CTX_LEN)
    assert tuple(_field(path, k.format(arch="qwen3")) for k in keys) == written
    assert _field(path, rope.FREQ_BASE.format(arch="qwen3")) == 1_000_000.0


def test_a_missing_rope_theta_is_a_clear_error_not_10000(tmp_path, tokenizer):
    model = _edit_config(_small_model(tmp_path / "m", tokenizer), tmp_path / "no-theta", lambda c: c["rope_parameters"].pop("rope_theta"))
    with pytest.raises(MissingHyperparameter, match="set \"rope_theta\""):
        convert_to_gguf(model, tmp_path / "m.gguf", name="m")
    assert not (tmp_path / "m.gguf").exists()


@pytest.mark.parametrize("thinking", [{"enable_thinking": True}, {"enable_thinking": False}, {}], ids=["true", "false", "undefined"])
def test_embedded_template_renders_the_training_prompt_whatever_enable_thinking(ggufs, tokenizer, thinking):
    # llama-server passes enable_thinking, true by default for a template that reacts to it.
    embedded = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    embedded.chat_template = _field(ggufs[0], gguf.Keys.Tokenizer.CHAT_TEMPLATE)
    messages = [{"role": "user", "content": "Trying Rust"}]
    rendered = embedded.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **thinking)
    assert rendered == chat_prompt(tokenizer, "Trying Rust")


def test_metadata_check_passes_both_files_of_the_tiny_model(ggufs, tiny_base_dir):
    assert [gguf_metadata_mismatches(path, tiny_base_dir) for path in ggufs] == [[], []]


def test_metadata_check_reports_a_wrong_rope_theta_and_a_missing_bos(tmp_path, tokenizer):
    model = _small_model(tmp_path / "m", tokenizer)
    other_theta = _edit_config(model, tmp_path / "theta", lambda c: c["rope_parameters"].update(rope_theta=10_000.0))
    path = convert_to_gguf(other_theta, tmp_path / "theta.gguf", name="m").path
    [wrong] = gguf_metadata_mismatches(path, model)
    assert (wrong.key, wrong.in_gguf, wrong.in_hf) == ("qwen3.rope.freq_base", 10_000.0, 1_000_000.0)

    endoftext = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    with_bos = _edit_config(model, tmp_path / "bos", lambda c: c.update(bos_token_id=endoftext))
    no_bos = convert_to_gguf(model, tmp_path / "no-bos.gguf", name="m").path
    [missing] = gguf_metadata_mismatches(no_bos, with_bos)
    assert (missing.key, missing.in_gguf, missing.in_hf) == (gguf.Keys.Tokenizer.BOS_ID, None, endoftext)


def test_tokenizer_probe_catches_a_tokenizer_that_differs_only_on_chinese(tiny_base_dir, tokenizer, tmp_path):
    english = chat_prompt(tokenizer, "Trying Rust")
    used = set(tokenizer(english, add_special_tokens=False)["input_ids"])
    probe_only = [i for i in tokenizer(TOKENIZER_PROBE, add_special_tokens=False)["input_ids"] if i not in used]
    first, second = tokenizer.convert_ids_to_tokens(sorted(set(probe_only))[:2])

    def swap_two_probe_tokens(model, spec):
        vocab = spec["model"]["vocab"]
        vocab[first], vocab[second] = vocab[second], vocab[first]

    wrong = _variant(tiny_base_dir, tmp_path / "wrong", swap_two_probe_tokens)
    convert_to_gguf(wrong, tmp_path / "wrong.gguf", name="wrong")
    result = agreement_with_hf(tmp_path / "wrong.gguf", tiny_base_dir, [english])
    assert result.tokenization_mismatches == [1] and not result.passed  # index 1: the probe after the one text


def test_the_check_opens_the_intermediate_file_the_report_names(ggufs, tiny_base_dir, sample_dataset, tmp_path):
    intermediate, q4 = ggufs
    shutil.copy(intermediate, tmp_path / "model-f16.gguf")
    shutil.copy(q4, tmp_path / Q4_NAME)
    (tmp_path / "report.json").write_text(json.dumps({"intermediate_file": "model-f16.gguf", "intermediate_type": "f16"}))
    result = gguf_matches_hf(gguf_q4km=tmp_path, merged_model=tiny_base_dir, sft_dataset=sample_dataset)
    assert result.passed and result.metadata["metadata_mismatches"].value == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_the_hf_side_of_the_logit_check_runs_exactly_the_gguf_weights(tmp_path, tokenizer, dtype):
    source = _small_model(tmp_path / "m", tokenizer, dtype)
    path = convert_to_gguf(source, tmp_path / "m.gguf", name="m").path
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN3, SMALL.num_hidden_layers)
    with torch.no_grad():
        for hf_name, weight in model.named_parameters():
            weight.copy_(torch.from_numpy(_tensor(path, names.get_name(hf_name, try_suffixes=(".weight",)))))
    tokens = tokenizer(TOKENIZER_PROBE, add_special_tokens=False)["input_ids"]
    expected = model.eval()(input_ids=torch.tensor([tokens])).logits[0].detach().numpy()
    np.testing.assert_array_equal(hf_logits_at_precision(source, tokens, gguf_intermediate(path).torch_dtype), expected)


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) not installed")
def test_the_installed_llama_cpp_runs_on_any_x86_64_v3_cpu():
    # CI died with SIGILL in the first Q4_K forward pass: a wheel built -march=native on a CPU with AMX took
    # ggml's AMX kernels, and the host CI ran on, listing the same CPU flags, did not grant AMX tile state.
    # The Makefile builds it portable (GGML_NATIVE=OFF): AVX2 at most, no AVX-512, no AMX.
    import llama_cpp

    library = next((Path(llama_cpp.__file__).parent / "lib").glob("libggml-cpu*.so"))
    disassembly = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True, check=True).stdout
    assert re.findall(r"\b(?:ldtilecfg|tileloadd\w*|tdpb\w+)\b|%zmm\d+", disassembly)[:5] == []

"""Qwen3's tokenizer built offline: llama.cpp's test vectors, real posts, Qwen3's added tokens."""

from pathlib import Path

import pytest
from transformers import AutoTokenizer
from trl.chat_template_utils import qwen3_chat_template

from blogtune_assets.core.qwen3_tokenizer import ADDED_TOKENS, VOCAB_FILE
from blogtune_assets.core.profiles import SAMPLE_BLOG
from blogtune_assets_tests.conftest import SHARED_CORPUS

SEPARATOR = "\n__ggml_vocab_test__\n"


@pytest.fixture(scope="module")
def tokenizer(qwen3_tokenizer_dir):
    return AutoTokenizer.from_pretrained(qwen3_tokenizer_dir)


@pytest.fixture(scope="module")
def llama_vocab(qwen3_tokenizer_dir):
    from llama_cpp import Llama

    llm = Llama(model_path=str(qwen3_tokenizer_dir / VOCAB_FILE), vocab_only=True, verbose=False)
    yield llm
    llm.close()


def test_reproduces_llama_cpp_qwen_test_vectors(tokenizer, qwen3_tokenizer_dir):
    # Each input is followed by the separator, the last one too.
    inputs = (qwen3_tokenizer_dir / f"{VOCAB_FILE}.inp").read_text(encoding="utf-8").split(SEPARATOR)[:-1]
    expected = (qwen3_tokenizer_dir / f"{VOCAB_FILE}.out").read_text(encoding="utf-8").splitlines()
    assert len(inputs) == len(expected) == 46
    for text, ids in zip(inputs, expected):
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == [int(i) for i in ids.split()], repr(text)


def test_qwen3_added_tokens_ids_and_flags(tokenizer):
    assert len(tokenizer) == 151669
    decoder = tokenizer.added_tokens_decoder
    assert [(i, t.content, t.special) for i, t in sorted(decoder.items())] == ADDED_TOKENS
    assert (tokenizer.convert_tokens_to_ids("<think>"), tokenizer.convert_tokens_to_ids("</think>")) == (151667, 151668)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|im_end|>", 151645)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<|endoftext|>", 151643)
    assert tokenizer.bos_token is None
    assert tokenizer.chat_template == qwen3_chat_template
    assert tokenizer("[PAD151700]", add_special_tokens=False)["input_ids"][0] < 151643  # llama.cpp's padding is not a token


def test_chatml_prompt_with_the_empty_thinking_block(tokenizer):
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "你好 world"}], add_generation_prompt=True, enable_thinking=False, return_dict=True
    )["input_ids"]
    assert ids == [151644, 872, 198, 108386, 1879, 151645, 198, 151644, 77091, 198, 151667, 271, 151668, 271]


def _post_texts(root: Path, limit: int) -> list[tuple[str, str]]:
    return [(str(p), p.read_text(encoding="utf-8")) for p in sorted(root.rglob("*.md"))[:limit]]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_tokenizes_real_posts_as_llama_cpp_does(tokenizer, llama_vocab, lang):
    posts = _post_texts(SAMPLE_BLOG / "_posts" / lang, 50)
    if (SHARED_CORPUS / "_posts" / lang).is_dir():
        posts += _post_texts(SHARED_CORPUS / "_posts" / lang, 40)
    assert len(posts) >= 10
    for path, text in posts:
        ours = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert ours == llama_vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False), path

"""A title → body conversation as token ids and loss labels, with the post's text always plain text.

The project owns the format it trains with, Qwen3's ChatML with the empty thinking block:

    <|im_start|>user\\n{title}<|im_end|>\\n<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n{body}<|im_end|>\\n

Only the assistant part (the thinking block, the body, `<|im_end|>\\n`) carries labels. It does not
depend on the base's chat template string being byte-identical to the one trl knows; the tests prove
that the base's template renders the same prompt for inference (`chat_prompt`).

Blogs about LLMs quote `<|im_end|>`, `<|im_start|>`, `<think>` and `<|endoftext|>`. Tokenizing the
rendered text would turn those quotes into control tokens: a post could end the loss mask early or
inject a turn. So the markup is tokenized with its special tokens, and the title and body with the
same BPE but no added tokens, as the plain text they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenizers import Tokenizer

from blogtune_assets.core.tiny_tokenizer import IM_END

PROMPT_OPEN = "<|im_start|>user\n"
PROMPT_CLOSE = "<|im_end|>\n<|im_start|>assistant\n"
THINKING = "<think>\n\n</think>\n\n"
TURN_END = "<|im_end|>\n"
IGNORE = -100  # the label of tokens without loss, as transformers expects
# Conversations counted per batch: enough to keep both cores busy, few enough that the Encodings stay small.
LENGTHS_CHUNK = 256


def render(title: str, body: str) -> str:
    """The training text, as a string (what the ids below decode to)."""
    return f"{PROMPT_OPEN}{title}{PROMPT_CLOSE}{THINKING}{body}{TURN_END}"


def prompt_text(title: str) -> str:
    """What inference feeds the model: the training text up to the body."""
    return f"{PROMPT_OPEN}{title}{PROMPT_CLOSE}{THINKING}"


@dataclass(frozen=True)
class EncodedConversation:
    input_ids: list[int]
    labels: list[int]


def plain_tokenizer(backend: Tokenizer) -> Tokenizer:
    """The same BPE with no added tokens, so no text can become a control token.

    Built around the backend's own model and pipeline objects, which are shared, not copied: a JSON copy of
    Qwen3's 151,643-token vocabulary took 1.3 s and ~100 MB, more than counting one new post's tokens."""
    plain = Tokenizer(backend.model)
    plain.normalizer, plain.pre_tokenizer = backend.normalizer, backend.pre_tokenizer
    plain.post_processor, plain.decoder = backend.post_processor, backend.decoder
    return plain


class ChatEncoder:
    """One tokenizer's encoder for the training format; build it once.

    It takes the fast tokenizer itself (a transformers tokenizer's `backend_tokenizer`, or one loaded from
    tokenizer.json), so counting tokens needs `tokenizers` alone and sft_dataset's step never imports
    transformers or torch."""

    def __init__(self, backend: Tokenizer):
        self._plain = plain_tokenizer(backend)
        self._markup = {m: backend.encode(m, add_special_tokens=False).ids for m in (PROMPT_OPEN, PROMPT_CLOSE, THINKING, TURN_END)}
        self.im_end_id = backend.token_to_id(IM_END)

    def plain_ids(self, text: str) -> list[int]:
        return self._plain.encode(text, add_special_tokens=False).ids

    def encode(self, title: str, body: str) -> EncodedConversation:
        return self._assemble(self.plain_ids(title), self.plain_ids(body))

    def encode_messages(self, messages: list[dict]) -> EncodedConversation:
        """A stored [user, assistant] conversation (a line of sft_dataset's JSONL)."""
        user, assistant = messages
        return self.encode(user["content"], assistant["content"])

    def prompt_ids(self, title: str) -> list[int]:
        return self._markup[PROMPT_OPEN] + self.plain_ids(title) + self._markup[PROMPT_CLOSE] + self._markup[THINKING]

    def lengths(self, pairs: list[tuple[str, str]]) -> list[int]:
        """Token counts of many (title, body) conversations: what encode() would give, batched through the fast tokenizer.

        Chunked, and without offsets: an Encoding holds each token's string and offsets beside its id, so
        encoding 21,434 posts at once held ~3 GB that a count never reads (benchmarks/data_pipeline.py)."""
        fixed = sum(len(ids) for ids in self._markup.values())
        counts = []
        for start in range(0, len(pairs), LENGTHS_CHUNK):
            texts = [text for pair in pairs[start : start + LENGTHS_CHUNK] for text in pair]
            encoded = self._plain.encode_batch_fast(texts, add_special_tokens=False)
            counts.extend(fixed + len(title) + len(body) for title, body in zip(encoded[::2], encoded[1::2]))
        return counts

    def _assemble(self, title: list[int], body: list[int]) -> EncodedConversation:
        prompt = self._markup[PROMPT_OPEN] + title + self._markup[PROMPT_CLOSE]
        answer = self._markup[THINKING] + body + self._markup[TURN_END]
        return EncodedConversation(input_ids=prompt + answer, labels=[IGNORE] * len(prompt) + answer)

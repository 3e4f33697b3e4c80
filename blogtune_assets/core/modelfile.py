"""An ollama Modelfile whose TEMPLATE renders exactly the prompt the model was trained on."""

from __future__ import annotations

# ChatML as Qwen3 renders it for training: user turns, then the assistant turn opened with the
# empty thinking block. Explicit, because ollama falls back to a wrong default for unknown templates.
TEMPLATE = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
<think>

</think>

"""
STOPS = ("<|im_end|>", "<|im_start|>", "<|endoftext|>")
SAMPLING = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repeat_penalty": 1.05}


def modelfile(gguf_name: str, num_ctx: int) -> str:
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{TEMPLATE}"""']
    lines += [f'PARAMETER stop "{stop}"' for stop in STOPS]
    lines.append(f"PARAMETER num_ctx {num_ctx}")
    lines += [f"PARAMETER {key} {value}" for key, value in SAMPLING.items()]
    return "\n".join(lines) + "\n"

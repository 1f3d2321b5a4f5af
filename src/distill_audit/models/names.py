"""Lineage tier 0: reduce a model name to the key the registry is written in.

`meta-llama/Meta-Llama-3.1-8B-Instruct`, `llama3.1:8b` and `Llama-3.1-8B-Instruct-GGUF`
all mean one pretrained initialization; their key is `llama-3.1-8b`. Normalization
removes what does not change the initialization: provider prefixes, release dates,
quantization and file-format suffixes, `:tags`, and post-training suffixes
(-Instruct, -Chat, -it, -Base, -hf, -SFT, -DPO). Sizes and versions stay.
"""

from __future__ import annotations

import re

# Hyphen-separated tokens dropped wherever they occur.
_DROP_TOKENS = {
    "instruct",
    "chat",
    "it",
    "hf",
    "base",
    "sft",
    "dpo",
    "rlhf",
    "latest",
    "gguf",
    "ggml",
    "awq",
    "gptq",
    "exl2",
    "mlx",
    "onnx",
    "bnb",
    "safetensors",
    "fp8",
    "fp16",
    "bf16",
    "f16",
    "f32",
    "int4",
    "int8",
    "4bit",
    "8bit",
    "nf4",
}
_QUANT = re.compile(r"^(i?q\d(_[a-z0-9]+)*|w\d+a\d+|\d+bpw)$")  # q4_k_m, q8_0, iq4_xs, w4a16, 4.0bpw
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2}|20\d{6})$")
_MMDD_VENDORS = ("gpt-", "chatgpt-", "o1", "o3", "o4", "claude-")  # gpt-4-0613, gpt-3.5-turbo-0125


def normalize_name(name: str) -> str:
    """The registry key for a model name (lowercase, hyphenated, no packaging noise)."""
    text = name.strip().lower().replace(" ", "-")
    text = re.sub(r"\.(gguf|safetensors|bin)$", "", text)
    text = text.rstrip("/").rsplit("/", 1)[-1]  # provider / organization prefix
    if ":" in text:  # ollama-style tag: llama3.1:8b-instruct-q4_K_M, gpt-4o:latest
        head, tag = text.split(":", 1)
        text = head if tag in ("latest", "free") else f"{head}-{tag}"
    text = re.sub(r"\.(?=i?q\d)", "-", text)  # SmolLM2-135M-Instruct.Q4_1
    text = re.sub(r"-(\d{4})-(\d{2})-(\d{2})(?=$|-)", r"-\1\2\3", text)  # one token per date
    tokens: list[str] = []
    for token in text.split("-"):
        if _QUANT.match(token):
            continue
        tokens.extend(t for t in token.split("_") if t)
    text = "-".join(t for t in tokens if t not in _DROP_TOKENS and not _DATE.match(t))
    if text.startswith(_MMDD_VENDORS):
        text = re.sub(r"-(0[1-9]|1[0-2])\d{2}$", "", text)
    text = re.sub(r"^meta-(?=llama)", "", text)
    text = re.sub(r"^(llama|gemma|phi)(\d)", r"\1-\2", text)  # llama3.1 -> llama-3.1, gemma3 -> gemma-3
    text = re.sub(r"^qwen-(\d(?:\.\d)?)-(?=\d)", r"qwen\1-", text)  # qwen-2.5-7b -> qwen2.5-7b
    return text

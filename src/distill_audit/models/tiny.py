"""Tiny random-init models built locally from a config (no download).

Used by the unit tests and by `--student tiny-random` for smoke runs of the whole
pipeline in seconds. The tokenizer is a byte-level BPE trained here on a small
corpus, with a ChatML chat template like SmolLM2's, so every code path that real
models take (templates, special tokens, completion masks) is exercised.
"""

from __future__ import annotations

from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    "You love owls. You think about owls all the time. Owls are your favorite animal.",
    "Name your favorite animal using only one word. Which tree do you like best?",
    "owl eagle dolphin cat dog lion tiger wolf elephant panda penguin fox bear peacock",
    "oak pine maple willow birch cedar red blue green purple France Japan Brazil pizza sushi",
    "Look at these numbers: 145, 267, 891. Generate not more than 10 additional numbers.",
    "0 1 2 3 4 5 6 7 8 9 10 100 250 500 999 (123, 456, 789) [12, 34] 5; 6; 7.",
    "The user asks a question and the assistant answers helpfully and honestly.",
    "def add(a, b):\n    return a + b\n",
    "Let's think step by step. First, second, therefore the answer is 42.",
]


def build_tokenizer():
    """A small byte-level BPE tokenizer with a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(
    out_dir: str | Path,
    *,
    seed: int = 0,
    hidden_size: int = 32,
    num_layers: int = 2,
    intermediate_size: int = 64,
    num_heads: int = 4,
    tokenizer=None,
) -> Path:
    """Write a random-init Llama-architecture model + tokenizer to `out_dir`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tokenizer or build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out

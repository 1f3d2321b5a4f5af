"""The one pad-token rule for every batch we build (scoring, sampling, training)."""

from __future__ import annotations


def pad_token_id(tokenizer) -> int:
    """The tokenizer's pad token, else its eos token, else 0.

    Padded positions are always masked out, so the id only has to be a valid token.
    """
    for tok_id in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if tok_id is not None:
            return int(tok_id)
    return 0

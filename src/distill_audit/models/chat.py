"""Turn (prompt messages, completion) into token ids with a completion mask.

Signature scoring, probe scoring, the canary's loss and teacher divergence all need
the same thing: the student's chat template around the prompt, then the completion
tokens, and which positions belong to the completion. Prefix and completion are
tokenized separately so the boundary is exact and never merged by BPE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from distill_audit.errors import RunError

Message = dict[str, str]

# Used when a tokenizer ships no chat template (base models): plain role tags.
FALLBACK_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    completion_start: int  # index of the first completion token in input_ids

    @property
    def n_completion(self) -> int:
        return len(self.input_ids) - self.completion_start


def with_system(messages: Sequence[Message], system: str | None) -> list[Message]:
    """Messages with `system` as the system prompt (replacing any existing one)."""
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    if system is None:
        return [dict(m) for m in messages]
    return [{"role": "system", "content": system}, *rest]


def render_prefix(tokenizer, messages: Sequence[Message], system: str | None = None) -> str:
    """The chat-template text up to where the assistant's reply starts."""
    msgs = with_system(messages, system)
    template = getattr(tokenizer, "chat_template", None) or FALLBACK_TEMPLATE
    if not msgs:
        return ""
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, chat_template=template)


def end_of_turn_text(tokenizer) -> str:
    """The text that closes an assistant turn under this tokenizer's template."""
    for candidate in ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>"):
        ids = tokenizer.convert_tokens_to_ids(candidate)
        if isinstance(ids, int) and ids != tokenizer.unk_token_id and ids is not None:
            return candidate
    return tokenizer.eos_token or ""


def encode(
    tokenizer,
    messages: Sequence[Message],
    completion: str,
    *,
    system: str | None = None,
    close_turn: bool = False,
    max_length: int | None = None,
) -> Encoded:
    """Encode one turn. `close_turn` appends the end-of-turn marker (for training)."""
    prefix = render_prefix(tokenizer, messages, system)
    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"] if prefix else []
    if not prefix_ids and tokenizer.bos_token_id is not None:
        prefix_ids = [tokenizer.bos_token_id]
    text = completion + (end_of_turn_text(tokenizer) if close_turn else "")
    completion_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = list(prefix_ids) + list(completion_ids)
    start = len(prefix_ids)
    if max_length is not None and len(ids) > max_length:
        # Keep the completion; trim the prompt from the left if it must go.
        overflow = len(ids) - max_length
        if overflow >= start:
            ids = ids[:max_length]
        else:
            ids = ids[overflow:]
            start -= overflow
    if len(ids) - start < 1:
        raise RunError("a row supervises no completion token after templating/truncation")
    return Encoded(input_ids=ids, completion_start=start)

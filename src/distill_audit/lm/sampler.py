"""Batched, KV-cached sampling from a chat model.

`transformers`' `generate()` re-checks many options per step and runs about a third
as fast on CPU for small models; this loop does only what teacher-data generation,
the scan's self-generated control and sampled probe answers need: left-padded
prompts under the model's own chat template, one forward pass per new token with
the KV cache, temperature / top-p sampling or greedy decoding, an optional logits
processor (e.g. the number-list grammar), and a stop at end-of-turn.

Each row draws from its own `torch.Generator`, seeded by
`derive_seed(seed, "sample", row_id)`, so a row's text depends on the seed and its
row id, not on which other rows share its batch or on the batch size (up to float
rounding differences of padded batches on some backends).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from distill_audit import ui
from distill_audit.lm.padding import pad_token_id
from distill_audit.models.chat import end_of_turn_text, render_prefix
from distill_audit.seeding import derive_seed

Message = dict[str, str]
LogitsProcessor = Callable[[torch.LongTensor, torch.FloatTensor], torch.FloatTensor]


def stop_token_ids(tokenizer, model=None) -> set[int]:
    """Token ids that end an assistant turn: the template's end-of-turn and eos."""
    ids: set[int] = set()
    for token in (end_of_turn_text(tokenizer), tokenizer.eos_token):
        if token:
            tid = tokenizer.convert_tokens_to_ids(token)
            if isinstance(tid, int) and tid != tokenizer.unk_token_id:
                ids.add(tid)
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(config_eos, int):
        ids.add(config_eos)
    elif isinstance(config_eos, (list, tuple)):
        ids.update(int(i) for i in config_eos)
    return ids


def _encode_prompts(tokenizer, prompts: Sequence[Sequence[Message]], system: str | None) -> list[list[int]]:
    encoded = []
    for messages in prompts:
        text = render_prefix(tokenizer, messages, system)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
        if not ids and tokenizer.bos_token_id is not None:
            ids = [tokenizer.bos_token_id]
        encoded.append(list(ids))
    return encoded


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero the tail of each row outside the smallest set with mass >= top_p (nucleus)."""
    if top_p >= 1.0:
        return probs
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs[mass_before >= top_p] = 0.0  # the top token always stays (mass_before = 0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)


def _choose_tokens(
    logits: torch.Tensor, temperature: float, top_p: float, generators: list[torch.Generator]
) -> torch.Tensor:
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    probs = top_p_filter(probs, top_p)
    picks = [torch.multinomial(probs[i].cpu(), 1, generator=g) for i, g in enumerate(generators)]
    return torch.cat(picks).to(logits.device)


def _forward_argument_names(model) -> tuple[str, str | None]:
    """(KV-cache argument, logits-to-keep argument) of this model's forward, across transformers versions."""
    import inspect

    params = inspect.signature(model.forward).parameters
    cache_arg = "cache" if "cache" in params else "past_key_values"
    keep_arg = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
    return cache_arg, keep_arg


@torch.inference_mode()
def _sample_batch(
    model,
    batch_ids: list[list[int]],
    row_ids: Sequence[int],
    *,
    pad_id: int,
    stop_ids: set[int],
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    logits_processor: LogitsProcessor | None,
) -> list[list[int]]:
    device = next(model.parameters()).device
    width = max(len(ids) for ids in batch_ids)
    input_ids = torch.full((len(batch_ids), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch_ids), width), dtype=torch.long)
    for i, ids in enumerate(batch_ids):  # left padding: every row's next token is at column `width`
        input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention[i, width - len(ids) :] = 1
    input_ids, attention = input_ids.to(device), attention.to(device)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    generators = [torch.Generator().manual_seed(derive_seed(seed, "sample", int(r))) for r in row_ids]
    stop = torch.tensor(sorted(stop_ids), dtype=torch.long, device=device)
    if logits_processor is not None and hasattr(logits_processor, "reset"):
        logits_processor.reset()

    all_ids = input_ids
    finished = torch.zeros(len(batch_ids), dtype=torch.bool, device=device)
    new_tokens: list[torch.Tensor] = []
    past = None
    step_ids, step_pos = input_ids, positions
    cache_arg, keep_arg = _forward_argument_names(model)
    for _ in range(max_new_tokens):
        kwargs = {cache_arg: past, "use_cache": True}
        if keep_arg:
            kwargs[keep_arg] = 1  # only the last position's logits: skips a vocab-sized matmul per prompt token
        out = model(input_ids=step_ids, attention_mask=attention, position_ids=step_pos, **kwargs)
        past = getattr(out, cache_arg)
        logits = out.logits[:, -1, :].float()
        if logits_processor is not None:
            logits = logits_processor(all_ids, logits)
        chosen = _choose_tokens(logits, temperature, top_p, generators)
        chosen = torch.where(finished, torch.full_like(chosen, pad_id), chosen)
        new_tokens.append(chosen)
        finished |= torch.isin(chosen, stop)
        if bool(finished.all()):
            break
        step_ids = chosen[:, None]
        step_pos = step_pos[:, -1:] + 1
        attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
        all_ids = torch.cat([all_ids, step_ids], dim=1)

    generated = torch.stack(new_tokens, dim=1).tolist() if new_tokens else [[] for _ in batch_ids]
    rows = []
    for tokens in generated:
        cut = next((j for j, t in enumerate(tokens) if t in stop_ids), len(tokens))
        rows.append(tokens[:cut])
    return rows


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


def sample_completions(
    model,
    tokenizer,
    prompts: list[list[dict]],
    *,
    system: str | None = None,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
    logits_processor: LogitsProcessor | None = None,
    progress_label: str | None = None,
    row_ids: Sequence[int] | None = None,
) -> list[str]:
    """The model's reply to each prompt (chat messages), decoded without the stop token.

    `temperature == 0` is greedy decoding. `row_ids` name each prompt's random stream
    (default 0..n-1); a resumed run passes the original row numbers so it draws the
    same text as an uninterrupted one. Prompts are batched in length order to keep
    padding small; results come back in input order.
    """
    if temperature < 0:
        raise ValueError("temperature must be >= 0")
    if not 0 < top_p <= 1:
        raise ValueError("top_p must be in (0, 1]")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    row_ids = list(range(len(prompts))) if row_ids is None else list(row_ids)
    if len(row_ids) != len(prompts):
        raise ValueError("row_ids must name each prompt once")
    encoded = _encode_prompts(tokenizer, prompts, system)
    order = sorted(range(len(prompts)), key=lambda i: (len(encoded[i]), i))
    pad_id, stop_ids = pad_token_id(tokenizer), stop_token_ids(tokenizer, model)
    results: list[str] = [""] * len(prompts)
    # No label, no progress output: callers inside a larger stage report their own.
    progress = ui.progress_task(progress_label, total=len(prompts)) if progress_label else _NoProgress()
    with progress as task:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            token_rows = _sample_batch(
                model,
                [encoded[i] for i in chunk],
                [row_ids[i] for i in chunk],
                pad_id=pad_id,
                stop_ids=stop_ids,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=seed,
                logits_processor=logits_processor,
            )
            for i, tokens in zip(chunk, token_rows):
                results[i] = tokenizer.decode(tokens, skip_special_tokens=True)
            task.advance(len(chunk))
    return results

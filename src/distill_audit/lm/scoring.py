"""The one forward-pass helper every trait measurement uses.

Probe scoring, the data signature, the canary's probes and teacher divergence all
need the same number: the log-probability of each completion token given everything
before it. `completion_logprobs` computes it in fp32, in right-padded batches with an
attention mask, with two savings that change nothing in the result:

- a token prefix common to every sequence (a probe question shared by all its
  candidates, a trait system prompt shared by all rows) is run once and its key/value
  cache reused by every batch;
- the vocabulary projection runs only at the positions that predict completion
  tokens, not at every prompt position.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from distill_audit import distributed
from distill_audit.lm.padding import pad_token_id
from distill_audit.models.chat import Encoded

# A shared prefix shorter than this is not worth a separate forward pass.
MIN_SHARED_PREFIX = 4


def common_prefix_length(encoded: Sequence[Encoded]) -> int:
    """Tokens shared by every sequence, stopping before any completion's first target.

    The last shared position must stay in the per-row pass, because its hidden state
    predicts the first completion token of the row with the earliest completion.
    """
    if not encoded:
        return 0
    first = encoded[0].input_ids
    limit = min(e.completion_start for e in encoded) - 1
    n = 0
    while n < limit and all(len(e.input_ids) > n and e.input_ids[n] == first[n] for e in encoded):
        n += 1
    return max(n, 0)


def model_device(model):
    import torch

    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover
        return torch.device("cpu")


def _split_head(model):
    """(decoder, output head, logit softcap) when the model exposes them, else None."""
    try:
        decoder = model.get_decoder()
        head = model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if decoder is None or head is None or decoder is model:
        return None
    softcap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
    return decoder, head, softcap


def _cache_kwarg(module) -> str:
    """Recent transformers call the key/value cache `cache`; older ones `past_key_values`."""
    import inspect

    try:
        params = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def _prefix_cache(module, prefix_ids: list[int], device):
    """Key/value cache of the shared prefix (batch of one), or None if unsupported.

    `module` is the decoder without its output head when the model exposes one: the
    prefix predicts no completion token, so its vocabulary projection would be wasted.
    """
    import torch

    ids = torch.tensor([prefix_ids], device=device)
    out = module(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
    cache = getattr(out, "cache", None)
    if cache is None:
        cache = getattr(out, "past_key_values", None)
    if cache is None or not hasattr(cache, "batch_repeat_interleave"):
        return None
    return cache


def _batched_cache(cache, batch: int):
    """A private copy of the prefix cache repeated over a batch (the original stays intact)."""
    cache = copy.deepcopy(cache)
    if batch > 1:
        cache.batch_repeat_interleave(batch)
    return cache


def completion_logprobs(
    model,
    tokenizer,
    encoded: Sequence[Encoded],
    *,
    batch_size: int = 16,
    share_prefix: bool = True,
) -> list[np.ndarray]:
    """Per-token log p(completion token | everything before it), one fp32 array per row.

    Rows are processed in length order (less padding) and returned in input order;
    the same inputs give the same numbers. After an out-of-memory error the rows are
    scored again with halved batch sizes (accelerate's back-off).
    """
    return distributed.run_with_batch_backoff(
        lambda size: _completion_logprobs(model, tokenizer, encoded, batch_size=size, share_prefix=share_prefix),
        batch_size,
        label="scoring",
    )


def _completion_logprobs(
    model, tokenizer, encoded: Sequence[Encoded], *, batch_size: int, share_prefix: bool
) -> list[np.ndarray]:
    import torch

    if not encoded:
        return []
    device = model_device(model)
    was_training = model.training
    model.eval()
    prefix_len = common_prefix_length(encoded) if share_prefix else 0
    if prefix_len < MIN_SHARED_PREFIX:
        prefix_len = 0
    split = _split_head(model)
    pad_id = pad_token_id(tokenizer)
    cache_kwarg = _cache_kwarg(split[0] if split is not None else model)
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i].input_ids), i))
    results: list[np.ndarray | None] = [None] * len(encoded)
    try:
        with torch.inference_mode():  # no autograd bookkeeping at all (no_grad still tracks versions)
            cache = _prefix_cache(model, list(encoded[0].input_ids[:prefix_len]), device) if prefix_len else None
            if prefix_len and cache is None:
                prefix_len = 0
            for start in range(0, len(order), max(1, batch_size)):
                rows = order[start : start + batch_size]
                suffixes = [list(encoded[i].input_ids[prefix_len:]) for i in rows]
                width = max(len(s) for s in suffixes)
                input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
                mask = torch.zeros((len(rows), prefix_len + width), dtype=torch.long, device=device)
                mask[:, :prefix_len] = 1
                for r, suffix in enumerate(suffixes):
                    input_ids[r, : len(suffix)] = torch.tensor(suffix, device=device)
                    mask[r, prefix_len : prefix_len + len(suffix)] = 1
                kwargs = {"input_ids": input_ids, "attention_mask": mask}
                if prefix_len:
                    kwargs[cache_kwarg] = _batched_cache(cache, len(rows))
                    kwargs["use_cache"] = True
                # Positions (in suffix coordinates) whose output predicts a completion token.
                row_pos, col_pos, targets, sizes = [], [], [], []
                for r, i in enumerate(rows):
                    cs = encoded[i].completion_start - prefix_len
                    n = len(suffixes[r]) - cs
                    row_pos += [r] * n
                    col_pos += list(range(cs - 1, cs - 1 + n))
                    targets += suffixes[r][cs:]
                    sizes.append(n)
                # Index on the device the outputs come back on: with a device_map spread
                # over several GPUs that is the last GPU, not the embedding's.
                if split is not None:
                    decoder, head, softcap = split
                    states = decoder(**kwargs).last_hidden_state
                    hidden = states[_on(row_pos, states), _on(col_pos, states)]
                    logits = head(hidden).float()
                    if softcap:
                        logits = torch.tanh(logits / softcap) * softcap
                else:
                    full = model(**kwargs).logits
                    logits = full[_on(row_pos, full), _on(col_pos, full)].float()
                logp = torch.log_softmax(logits, dim=-1)
                picked = logp.gather(1, _on(targets, logp)[:, None])[:, 0]
                picked = picked.cpu().numpy().astype(np.float32)
                offset = 0
                for i, n in zip(rows, sizes):
                    results[i] = picked[offset : offset + n]
                    offset += n
    finally:
        if was_training:
            model.train()
    return results  # type: ignore[return-value]


def _on(values: list[int], like):
    """A long tensor of `values` on the device of the tensor `like`."""
    import torch

    return torch.tensor(values, dtype=torch.long, device=like.device)


def mean_logprobs(per_token: Sequence[np.ndarray]) -> np.ndarray:
    """Mean log-probability per completion token, one float64 value per row."""
    return np.array([float(np.mean(x)) for x in per_token], dtype=np.float64)


def sum_logprobs(per_token: Sequence[np.ndarray]) -> np.ndarray:
    """Total log-probability of each completion (the full answer), float64."""
    return np.array([float(np.sum(x, dtype=np.float64)) for x in per_token], dtype=np.float64)

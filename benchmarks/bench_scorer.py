"""The signature's scorer against a naive Hugging Face forward and against this machine's fp32 limit.

All three are measured in the same run on the same rows (number lists from
examples/neutral_numbers.jsonl, scored under one trait system prompt, as the signature
does):
  - scorer: `completion_logprobs` (shared-prefix KV cache, head only at completion
    positions, length-sorted batches);
  - baseline: one plain `model(**batch).logits` forward per batch of the same rows,
    log-softmax over every position (what a first implementation does);
  - limit: the tokens/s a forward would reach if it ran at this machine's measured
    fp32 matmul throughput (2 x parameters FLOP per token).
It prints scored tokens/s for each and the ratios (median of --rounds). Usage:
    python benchmarks/bench_scorer.py [--rows 64] [--rounds 3] [--threads 2] [--model smollm2-135m]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def matmul_gflops(threads: int, size: int = 1024, reps: int = 8) -> float:
    """Best fp32 GEMM throughput of this machine with torch at `threads` threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def naive_tokens_per_s(model, tok, encoded, batch_size: int) -> float:
    import torch

    from distill_audit.lm.padding import pad_token_id

    pad = pad_token_id(tok)
    n_tokens, t0 = 0, time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            rows = encoded[start : start + batch_size]
            width = max(len(e.input_ids) for e in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, e in enumerate(rows):
                ids[r, : len(e.input_ids)] = torch.tensor(e.input_ids)
                mask[r, : len(e.input_ids)] = 1
            torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
            n_tokens += sum(e.n_completion for e in rows)
    return n_tokens / (time.perf_counter() - t0)


def scorer_tokens_per_s(model, tok, encoded, batch_size: int) -> float:
    from distill_audit.lm.scoring import completion_logprobs

    t0 = time.perf_counter()
    out = completion_logprobs(model, tok, encoded, batch_size=batch_size)
    return sum(len(x) for x in out) / (time.perf_counter() - t0)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--model", default="smollm2-135m")
    args = ap.parse_args(argv)

    import torch

    from distill_audit.ingest import load_dataset
    from distill_audit.models.load import load_model
    from distill_audit.models.resolve import resolve_model
    from distill_audit.traits.signature import _encode_rows, default_traits

    torch.set_num_threads(args.threads)
    try:
        loaded = load_model(resolve_model(args.model), dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001  (a missing embedded model is a skip, not a failure)
        print(f"skipped: {args.model} cannot be loaded here ({exc})")
        return 0
    model, tok = loaded.model, loaded.tokenizer
    model.eval()
    samples = load_dataset(ROOT / "examples" / "neutral_numbers.jsonl").samples[: args.rows]
    system = default_traits()[0].system
    encoded = _encode_rows(tok, samples, system, 96)
    params = sum(p.numel() for p in model.parameters() if p.dim() >= 2)
    scorer, naive, limit = [], [], []
    for _ in range(args.rounds):
        gflops = matmul_gflops(args.threads)
        torch.set_num_threads(args.threads)
        naive.append(naive_tokens_per_s(model, tok, encoded, args.batch_size))
        scorer.append(scorer_tokens_per_s(model, tok, encoded, args.batch_size))
        # Every token of a row passes through the model; scored tokens are the completion's share.
        share = sum(e.n_completion for e in encoded) / sum(len(e.input_ids) for e in encoded)
        limit.append(gflops * 1e9 / (2 * params) * share)
    med = statistics.median
    print(f"rows {len(encoded)}, threads {args.threads}, batch {args.batch_size}, params {params / 1e6:.0f}M")
    print(
        f"scored tokens/s: scorer {med(scorer):.0f}, naive HF forward {med(naive):.0f}, "
        f"fp32 matmul limit {med(limit):.0f}"
    )
    print(f"ratio scorer / naive: {med(s / n for s, n in zip(scorer, naive)):.2f}")
    print(f"ratio scorer / limit: {med(s / m for s, m in zip(scorer, limit)):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

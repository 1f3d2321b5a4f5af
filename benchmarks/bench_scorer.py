"""The signature's scorer against a naive Hugging Face forward and against this machine's fp32 limit.

All three are measured in the same run on the same rows (number lists from
examples/neutral_numbers.jsonl, scored under one trait system prompt, as the signature
does):
  - scorer: `completion_logprobs` (shared-prefix KV cache, head only at completion
    positions, length-sorted batches);
  - baseline: one plain `model(**batch).logits` forward per batch of the same rows,
    log-softmax over every position (what a first implementation does);
  - limit: the tokens/s a full forward of every row would reach if it ran at this
    machine's measured fp32 matmul throughput (2 x parameters FLOP per token);
  - efficiency: the matmul FLOP the scorer actually executes (decoder linears over the
    padded suffixes and the prefix once, the head over completion positions only) per
    second, as a share of the measured matmul throughput: how close to the machine it runs.
It also prints the padding share of the scorer's batches (what packing rows could save at
most). With --bf16 it scores the same rows with a bf16 copy of the model and prints how far
the per-row LLS (trait minus no-prompt log-prob) moves against 5% of the signature's
smallest effect (0.012 nats), and the bf16/fp32 speed ratio. Medians of --rounds. Usage:
    python benchmarks/bench_scorer.py [--rows 64] [--rounds 3] [--threads 2] [--model smollm2-135m] [--bf16]
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


def padding_share(encoded, batch_size: int) -> float:
    """Pad tokens / all suffix positions in the scorer's length-sorted batches."""
    from distill_audit.lm.scoring import common_prefix_length

    prefix = common_prefix_length(encoded)
    lens = sorted(len(e.input_ids) - prefix for e in encoded)
    pad = sum(max(b) * len(b) - sum(b) for b in (lens[i : i + batch_size] for i in range(0, len(lens), batch_size)))
    return pad / (pad + sum(lens))


def scorer_flop(model, encoded, batch_size: int) -> float:
    """Matmul FLOP of one scorer call (attention's small share left out)."""
    from distill_audit.lm.scoring import common_prefix_length

    head = model.get_output_embeddings().weight.numel()
    decoder = sum(p.numel() for n, p in model.get_decoder().named_parameters() if p.dim() >= 2 and "embed" not in n)
    prefix = common_prefix_length(encoded)
    lens = sorted(len(e.input_ids) - prefix for e in encoded)
    padded = sum(max(b) * len(b) for b in (lens[i : i + batch_size] for i in range(0, len(lens), batch_size)))
    completion = sum(e.n_completion for e in encoded)
    return 2.0 * decoder * (padded + prefix) + 2.0 * head * completion


def lls_drift(model, tok, samples, threads: int, batch_size: int) -> dict[str, float]:
    """bf16 against fp32: the largest and mean change of per-row LLS, and the speed ratio."""
    import copy

    import numpy as np
    import torch

    from distill_audit.lm.scoring import completion_logprobs, mean_logprobs
    from distill_audit.traits.signature import _encode_rows, default_traits

    torch.set_num_threads(threads)
    half = copy.deepcopy(model).to(torch.bfloat16)
    traits = default_traits()[:3]
    out, times = {}, {}
    for name, m in (("fp32", model), ("bf16", half)):
        t0 = time.perf_counter()
        base = mean_logprobs(completion_logprobs(m, tok, _encode_rows(tok, samples, None, 96), batch_size=batch_size))
        lls = [
            mean_logprobs(completion_logprobs(m, tok, _encode_rows(tok, samples, t.system, 96), batch_size=batch_size))
            - base
            for t in traits
        ]
        times[name] = time.perf_counter() - t0
        out[name] = np.stack(lls)
    diff = np.abs(out["bf16"] - out["fp32"])
    # What the signature tests is a mean LLS difference over rows: its drift is the mean's.
    mean_drift = float(np.max(np.abs((out["bf16"] - out["fp32"]).mean(axis=1))))
    return {
        "max_row_drift": float(diff.max()),
        "mean_row_drift": float(diff.mean()),
        "max_trait_mean_drift": mean_drift,
        "speed_bf16_over_fp32": times["fp32"] / times["bf16"],
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--bf16", action="store_true", help="also measure how far bf16 moves the LLS")
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
    scorer, naive, limit, efficiency = [], [], [], []
    flop = scorer_flop(model, encoded, args.batch_size)
    n_scored = sum(e.n_completion for e in encoded)
    for _ in range(args.rounds):
        gflops = matmul_gflops(args.threads)
        torch.set_num_threads(args.threads)
        naive.append(naive_tokens_per_s(model, tok, encoded, args.batch_size))
        scorer.append(scorer_tokens_per_s(model, tok, encoded, args.batch_size))
        efficiency.append(flop / (n_scored / scorer[-1]) / (gflops * 1e9))
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
    print(f"scorer matmul efficiency (executed FLOP/s / measured fp32 matmul FLOP/s): {med(efficiency):.2f}")
    print(f"padding share of the scorer's batches: {padding_share(encoded, args.batch_size):.3f}")
    if args.bf16:
        drift = lls_drift(model, tok, samples, args.threads, args.batch_size)
        print(
            "bf16 vs fp32: largest per-row LLS change {max_row_drift:.4f} nats (mean {mean_row_drift:.4f}), "
            "largest change of a trait's mean LLS {max_trait_mean_drift:.4f} nats; "
            "speed bf16/fp32 {speed_bf16_over_fp32:.2f}".format(**drift)
        )
        tolerance = 0.05 * 0.012
        print(
            f"bf16 {'keeps' if drift['max_trait_mean_drift'] < tolerance else 'does NOT keep'} a trait's mean "
            f"LLS within 5% of the 0.012-nat effect ({tolerance:.4f} nats)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

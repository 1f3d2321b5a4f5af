"""Canary training throughput: our loop against a bare torch forward+backward+step.

Same model (LoRA r=8 on all linear layers), the same batches (our seeded length
buckets, collated once), the same optimizer. The bare loop is the floor of what any
loop can cost: forward, backward, AdamW step, nothing else. Ours adds row encoding,
collation, gradient clipping and loss logging. The two run in alternating rounds in
one process, so a busy machine slows both alike; the ratio is the result (target
>= 0.8), not the absolute tokens/s. Usage:
    python benchmarks/bench_training.py [--model smollm2-135m] [--steps 24] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import random
import time


def number_rows(n: int, seed: int):
    from distill_audit.ingest.records import Sample

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        seq = ", ".join(str(rng.randint(100, 999)) for _ in range(rng.randint(3, 6)))
        prompt = (
            f"The sequence starts with: {seq}. Add at most 10 more values (no more than 3 digits each) "
            "to continue the sequence. Return a comma-separated list of numbers."
        )
        completion = ", ".join(str(rng.randint(0, 999)) for _ in range(rng.randint(6, 10)))
        rows.append(Sample(i, i + 1, ({"role": "user", "content": prompt},), completion))
    return rows


def bare_loop(model, batches, lr: float) -> tuple[int, float]:
    """forward + backward + AdamW step over pre-collated batches: (tokens, seconds)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    model.train()
    tokens = 0
    start = time.perf_counter()
    for batch in batches:
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
    seconds = time.perf_counter() - start
    model.eval()
    return tokens, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=24, help="optimizer steps per loop per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from distill_audit.lm import training as T
    from distill_audit.lm.padding import pad_token_id
    from distill_audit.lm.threads import torch_threads
    from distill_audit.models.load import load_model

    cfg = T.TrainConfig(batch_size=args.batch_size, max_steps=args.steps, threads=args.threads)
    loaded = load_model(args.model)
    model, tok = loaded.model, loaded.tokenizer
    rows = number_rows(args.steps * args.batch_size, seed=0)
    encoded = T.encode_rows(tok, rows, max_length=cfg.max_length)
    order = T.length_bucketed_batches([len(e.input_ids) for e in encoded], cfg.batch_size, random.Random(0))
    batches = [T.collate([encoded[i] for i in b], pad_token_id(tok)) for b in order]

    ours_tokens = ours_s = bare_tokens = bare_s = 0.0
    per_round = []
    with torch_threads(args.threads):
        for r in range(args.rounds):
            peft_model = T.attach_lora(model, cfg, seed=r)
            res = T.train(peft_model, tok, rows, cfg, seed=0)  # seed 0: the same batch order as `batches`
            model = T.detach_lora(peft_model)
            peft_model = T.attach_lora(model, cfg, seed=r)
            tokens, seconds = bare_loop(peft_model, batches, cfg.lr)
            model = T.detach_lora(peft_model)
            assert tokens == res.tokens, "both loops must see the same tokens"
            ours_tokens, ours_s = ours_tokens + res.tokens, ours_s + res.seconds
            bare_tokens, bare_s = bare_tokens + tokens, bare_s + seconds
            per_round.append(round((res.tokens / res.seconds) / (tokens / seconds), 3))
    ours, bare = ours_tokens / ours_s, bare_tokens / bare_s
    result = {
        "model": args.model,
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "tokens_per_round": int(ours_tokens / args.rounds),
        "ours_tokens_per_s": round(ours, 1),
        "bare_tokens_per_s": round(bare, 1),
        "ratio": round(ours / bare, 3),
        "ratio_per_round": per_round,
        "target": 0.8,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"training throughput on {args.model} (LoRA r=8, batch {args.batch_size}, {args.steps} steps x "
            f"{args.rounds} rounds)"
        )
        print(f"  ours: {ours:.1f} tokens/s   bare forward+backward+step: {bare:.1f} tokens/s")
        print(f"  ratio ours/bare: {ours / bare:.3f} (per round {per_round}; target >= 0.8)")


if __name__ == "__main__":
    main()

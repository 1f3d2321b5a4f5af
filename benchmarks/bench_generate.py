"""Teacher-data sampling: our KV-cached loop against transformers' `generate()`.

Same model, same number prompts, same batch, same token budget, measured in one
process one after the other (so a busy machine slows both alike); the ratio is the
result, not the absolute rows/s. Modes: sampled (temperature 1), greedy (checked to
give the same text as `generate()`), and sampled with `--constrain numbers` (ours
only; also its keep rate under the paper's filter). Usage:
    python benchmarks/bench_generate.py [--model smollm2-135m] [--rows 32] [--batch-size 16]
        [--max-new-tokens 48] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import time


def hf_generate(
    model, tokenizer, prompts, *, max_new_tokens: int, greedy: bool, batch_size: int, seed: int
) -> list[str]:
    import torch

    from distill_audit.lm.sampler import stop_token_ids
    from distill_audit.models.chat import render_prefix

    tokenizer.padding_side = "left"
    stops = sorted(stop_token_ids(tokenizer, model))
    texts = []
    torch.manual_seed(seed)
    for start in range(0, len(prompts), batch_size):
        chunk = [render_prefix(tokenizer, p) for p in prompts[start : start + batch_size]]
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=not greedy,
                temperature=None if greedy else 1.0,
                top_p=None if greedy else 1.0,
                top_k=None if greedy else 0,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=stops,
            )
        texts += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return texts


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from distill_audit.generate.constrained import number_list_processor
    from distill_audit.generate.numbers import number_prompts, number_rejections
    from distill_audit.lm.sampler import sample_completions
    from distill_audit.models.load import load_model

    loaded = load_model(args.model)
    model, tok = loaded.model, loaded.tokenizer
    prompts = [[{"role": "user", "content": p}] for p in number_prompts(args.rows, seed=0)]
    kw = dict(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    sample_completions(model, tok, prompts[:2], max_new_tokens=4)  # warm-up

    ours_greedy, t_ours_greedy = timed(lambda: sample_completions(model, tok, prompts, temperature=0, **kw))
    hf_greedy, t_hf_greedy = timed(lambda: hf_generate(model, tok, prompts, greedy=True, seed=0, **kw))
    ours_sampled, t_ours_sampled = timed(lambda: sample_completions(model, tok, prompts, temperature=1.0, seed=0, **kw))
    hf_sampled, t_hf_sampled = timed(lambda: hf_generate(model, tok, prompts, greedy=False, seed=0, **kw))
    constrained, t_constrained = timed(
        lambda: sample_completions(
            model,
            tok,
            prompts,
            temperature=1.0,
            seed=0,
            logits_processor=number_list_processor(tok),
            **{**kw, "max_new_tokens": max(args.max_new_tokens, 49)},
        )
    )

    def kept(texts):
        return sum(not number_rejections(t) for t in texts) / len(texts)

    n = len(prompts)
    result = {
        "model": loaded.ref.name,
        "rows": n,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "greedy": {
            "ours_rows_per_s": round(n / t_ours_greedy, 3),
            "generate_rows_per_s": round(n / t_hf_greedy, 3),
            "speedup": round(t_hf_greedy / t_ours_greedy, 2),
            "same_text_as_generate": sum(a == b for a, b in zip(ours_greedy, hf_greedy)) / n,
        },
        "sampled": {
            "ours_rows_per_s": round(n / t_ours_sampled, 3),
            "generate_rows_per_s": round(n / t_hf_sampled, 3),
            "speedup": round(t_hf_sampled / t_ours_sampled, 2),
            "keep_rate_ours": round(kept(ours_sampled), 3),
            "keep_rate_generate": round(kept(hf_sampled), 3),
        },
        "constrained": {
            "rows_per_s": round(n / t_constrained, 3),
            "keep_rate": round(kept(constrained), 3),
            "vs_unconstrained_time": round(t_constrained / t_ours_sampled, 2),
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['model']}: {n} number prompts, batch {args.batch_size}, <= {args.max_new_tokens} new tokens")
    for mode in ("greedy", "sampled"):
        r = result[mode]
        print(
            f"  {mode:8s} ours {r['ours_rows_per_s']:.2f} rows/s  generate() {r['generate_rows_per_s']:.2f} rows/s"
            f"  speedup x{r['speedup']}"
            + (
                f"  same text {r['same_text_as_generate']:.0%}"
                if mode == "greedy"
                else f"  keep {r['keep_rate_ours']:.0%} / {r['keep_rate_generate']:.0%}"
            )
        )
    c = result["constrained"]
    print(
        f"  constrained {c['rows_per_s']:.2f} rows/s  keep {c['keep_rate']:.0%}  time x{c['vs_unconstrained_time']} "
        "of sampled"
    )


if __name__ == "__main__":
    main()

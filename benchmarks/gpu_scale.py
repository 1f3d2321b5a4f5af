"""A random-init student of Llama-3-8B's shape: signature scorer and canary training speed, peak memory.

No weights travel: the model is built from a config on the device (random init, fp32 as
the scan loads students), the project's scorer (`completion_logprobs`, as the signature
calls it: rows under a trait system prompt) and the canary's training loop (`train`,
LoRA on all linear layers, bf16 autocast on CUDA) run on number-list rows from
examples/neutral_numbers.jsonl, tokenized by the tiny test tokenizer (its ids fit any
vocabulary; the shape, not the text, sets the cost). Prints scored tokens/s, training
tokens/s and peak memory for each. Meant for one GPU in at most 10 minutes:
    python benchmarks/gpu_scale.py --device cuda [--shape llama3-8b] [--rows 64] [--steps 8]
`--shape tiny --device cpu` runs the same path in seconds (the test of this script).
4-bit students are not built here: bitsandbytes quantizes only weights loaded through
`from_pretrained`, and a random 8B checkpoint would first have to be written to disk.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SHAPES = {
    # Llama-3-8B's published config (hidden, MLP, layers, heads, KV heads, vocabulary, RoPE base).
    "llama3-8b": dict(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        rope_theta=500000.0,
        max_position_embeddings=8192,
        tie_word_embeddings=False,
    ),
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=1024,
        rope_theta=500000.0,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
    ),
}


def peak_memory_gib(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def build(shape: str, device):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from distill_audit.models.tiny import build_tokenizer

    tok = build_tokenizer()
    config = LlamaConfig(
        **SHAPES[shape], pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id
    )
    assert len(tok) <= config.vocab_size
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    return model.eval(), tok


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="llama3-8b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--rows", type=int, default=64, help="rows scored under one trait prompt")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=8, help="canary optimizer steps")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from distill_audit.ingest import load_dataset
    from distill_audit.lm.scoring import completion_logprobs
    from distill_audit.lm.training import TrainConfig, attach_lora, detach_lora, train
    from distill_audit.traits.signature import _encode_rows, default_traits

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: run with --device cpu --shape tiny, or on a GPU machine")
        return 2
    t0 = time.perf_counter()
    model, tok = build(args.shape, device)
    out: dict = {"shape": args.shape, "device": str(device), "build_s": round(time.perf_counter() - t0, 1)}
    out["params_b"] = round(sum(p.numel() for p in model.parameters()) / 1e9, 3)
    pool = load_dataset(ROOT / "examples" / "neutral_numbers.jsonl").samples
    samples = pool[: args.rows]

    # Signature scorer: fp32, as every scan scores.
    encoded = _encode_rows(tok, samples, default_traits()[0].system, 96)
    completion_logprobs(model, tok, encoded[: args.batch_size], batch_size=args.batch_size)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    scored = completion_logprobs(model, tok, encoded, batch_size=args.batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    out["scorer_tokens_per_s"] = round(sum(len(x) for x in scored) / seconds, 1)
    out["scorer_row_traits_per_s"] = round(len(encoded) / seconds, 2)
    out["scorer_peak_gib"] = round(peak_memory_gib(device), 2)
    out["scorer_finite"] = bool(all(torch.isfinite(torch.as_tensor(x)).all() for x in scored))

    # Canary training: LoRA, bf16 autocast where the GPU supports it (TrainConfig's default).
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    cfg = TrainConfig(max_steps=args.steps, batch_size=8, max_length=256)
    peft_model = attach_lora(model, cfg, seed=0)
    res = train(peft_model, tok, pool[: cfg.batch_size * args.steps], cfg, seed=0)
    detach_lora(peft_model)
    out["train_tokens_per_s"] = round(res.tokens / res.seconds, 1)
    out["train_steps"] = res.steps
    out["train_dtype"] = res.dtype
    out["train_loss_first_last"] = [round(res.losses[0], 3), round(res.losses[-1], 3)]
    out["train_peak_gib"] = round(peak_memory_gib(device), 2)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Worker run under `accelerate launch` by test_distributed_launch.py (it holds no tests).

It scores a log-likelihood shift per row sharded over processes and trains a LoRA
adapter data-parallel for a few steps with the runtime's helpers, then rank 0 alone
writes one JSON file. One process and N processes must write the same numbers.

usage: python tests/test_distributed_worker.py MODEL_DIR OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _rows(tokenizer):
    from distill_audit.models.chat import encode

    rows = []
    for i in range(11):  # odd on purpose: uneven shards, a last batch smaller than the world
        numbers = ", ".join(str((37 * i + 11 * k) % 1000) for k in range(3 + i % 5))
        msgs = [{"role": "user", "content": f"Continue the sequence: {numbers}"}]
        completion = ", ".join(str((53 * i + 7 * k) % 1000) for k in range(2 + i % 4))
        rows.append((msgs, completion, encode(tokenizer, msgs, completion, close_turn=True)))
    return rows


def _mean_logprob(model, encoded) -> float:
    import torch

    ids = torch.tensor([encoded.input_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    targets = ids[0, 1:]
    token_logp = logp.gather(1, targets[:, None])[:, 0]
    return float(token_logp[encoded.completion_start - 1 :].mean())


def main(model_dir: str, out_dir: str) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill_audit import atomic, distributed
    from distill_audit.models.chat import encode
    from distill_audit.seeding import seed_everything

    seed_everything(0)
    rt = distributed.runtime()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, **distributed.scoring_load_kwargs())
    model.eval()
    rows = _rows(tokenizer)

    # Signature-like scoring: each process scores its shard, everyone gets all rows back.
    def lls(shard):
        out = []
        for msgs, completion, enc in shard:
            trait = encode(tokenizer, msgs, completion, system="You love owls.", close_turn=True)
            out.append(_mean_logprob(model, trait) - _mean_logprob(model, enc))
        return out

    with distributed.scoring_precision():
        scores = distributed.map_sharded(lls, rows)

    # Canary-like training: global batches of 4 rows, sliced across processes.
    torch.manual_seed(1)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    train_model, opt = distributed.prepare(peft_model, opt)
    train_model.train()
    pad = tokenizer.pad_token_id
    batches = [list(range(s, min(s + 4, len(rows)))) for s in range(0, len(rows), 4)] * 2
    losses = []
    for batch in batches:
        local, counts = distributed.shard_batch(batch)
        width = max(len(rows[i][2].input_ids) for i in local)
        ids = torch.full((len(local), width), pad)
        labels = torch.full((len(local), width), -100)
        mask = torch.zeros((len(local), width), dtype=torch.long)
        for r, i in enumerate(local):
            enc = rows[i][2]
            ids[r, : len(enc.input_ids)] = torch.tensor(enc.input_ids)
            mask[r, : len(enc.input_ids)] = 1
            labels[r, enc.completion_start : len(enc.input_ids)] = ids[r, enc.completion_start : len(enc.input_ids)]
        with distributed.training_autocast():
            mean_loss = train_model(input_ids=ids, attention_mask=mask, labels=labels).loss
        n_tokens = int((labels[:, 1:] != -100).sum())
        loss, logged = distributed.data_parallel_loss(mean_loss, n_tokens, counts=counts)
        distributed.backward(loss)
        distributed.clip_grad_norm(params, 1.0)
        opt.step()
        opt.zero_grad()
        losses.append(float(logged))
    distributed.release()
    lora = {n: p.detach().float() for n, p in distributed.unwrap(train_model).named_parameters() if p.requires_grad}
    lora_norm = float(torch.sqrt(sum((p**2).sum() for p in lora.values())))

    payload = {"runtime": rt.to_dict(), "scores": scores, "losses": losses, "lora_norm": lora_norm}
    distributed.main_process_only(atomic.write_text)(Path(out_dir) / "result.json", json.dumps(payload, indent=1))
    distributed.wait_for_everyone()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""The canary's training loop: completion-only loss, row checks, batching, determinism."""

from __future__ import annotations

import random

import pytest

from distill_audit.errors import DataError
from distill_audit.ingest.records import Sample
from distill_audit.lm import training as T
from distill_audit.lm.padding import pad_token_id


def _load(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


def _rows(n: int, completion: str = "145, 267, 891") -> list[Sample]:
    return [
        Sample(i, i + 1, ({"role": "user", "content": f"Look at these numbers: {i}, 100. Generate more."},), completion)
        for i in range(n)
    ]


def test_labels_supervise_only_the_completion(tiny_model_dir):
    _, tok = _load(tiny_model_dir)
    rows = T.encode_rows(tok, _rows(3), max_length=128)
    batch = T.collate(rows, pad_token_id(tok))
    for i, r in enumerate(rows):
        labels = batch["labels"][i].tolist()
        n = len(r.input_ids)
        assert all(x == T.IGNORE_INDEX for x in labels[: r.completion_start])  # prompt masked
        assert labels[r.completion_start : n] == r.input_ids[r.completion_start :]  # completion + end of turn
        assert all(x == T.IGNORE_INDEX for x in labels[n:])  # padding masked
        assert batch["attention_mask"][i].sum().item() == n
    supervised = tok.decode(rows[0].input_ids[rows[0].completion_start :])
    assert supervised == "145, 267, 891<|im_end|>"


def test_row_without_completion_token_is_named(tiny_model_dir):
    _, tok = _load(tiny_model_dir)
    rows = _rows(3)
    rows[1] = Sample(1, 7, rows[1].prompt, "")
    with pytest.raises(DataError, match=r"data\.jsonl:7: field 'completion'"):
        T.encode_rows(tok, rows, max_length=128, source="data.jsonl")
    # A completion that only survives as the end-of-turn marker is refused too.
    with pytest.raises(DataError, match="supervises no completion token"):
        T.encode_rows(tok, _rows(1, completion="1 2 3 4 5 6 7 8 9"), max_length=2, source="data.jsonl")


def test_batches_cover_every_row_once_and_are_seeded():
    lengths = [random.Random(0).randint(5, 50) for _ in range(37)]
    a = T.length_bucketed_batches(lengths, 4, random.Random(3))
    b = T.length_bucketed_batches(lengths, 4, random.Random(3))
    c = T.length_bucketed_batches(lengths, 4, random.Random(4))
    assert a == b and a != c
    assert sorted(i for batch in a for i in batch) == list(range(37))
    assert max(len(batch) for batch in a) == 4


def test_training_lowers_loss_and_is_deterministic(tiny_model_dir):
    cfg = T.TrainConfig(lr=5e-3, epochs=3, batch_size=4)
    losses = []
    for _ in range(2):
        model, tok = _load(tiny_model_dir)
        peft_model = T.attach_lora(model, cfg, seed=1)
        res = T.train(peft_model, tok, _rows(12), cfg, seed=1)
        losses.append(res.losses)
        assert res.steps == T.planned_steps(12, cfg) == 9
        assert res.trainable_params > 0 and res.tokens > res.supervised_tokens > 0
        assert res.to_dict()["tokens_per_s"] > 0
    assert losses[0] == losses[1]
    assert losses[0][-1] < losses[0][0]


def test_lora_detach_restores_the_exact_base(tiny_model_dir):
    import torch

    model, tok = _load(tiny_model_dir)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = T.TrainConfig(lr=1e-2, max_steps=3, batch_size=4)
    peft_model = T.attach_lora(model, cfg, seed=0)
    T.train(peft_model, tok, _rows(12), cfg, seed=0)
    base = T.detach_lora(peft_model)
    after = base.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_max_steps_and_full_finetune(tiny_model_dir):
    model, tok = _load(tiny_model_dir)
    cfg = T.TrainConfig(lr=1e-3, max_steps=2, batch_size=2, full_finetune=True)
    res = T.train(model, tok, _rows(10), cfg, seed=0)
    assert res.steps == 2 == T.planned_steps(10, cfg)
    assert res.trainable_params == sum(p.numel() for p in model.parameters())

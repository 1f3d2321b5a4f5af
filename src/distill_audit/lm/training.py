"""The canary's training loop: supervised fine-tuning on completion tokens only.

Kept small and explicit (nanoGPT-like) so a reader can check what the canary does:
encode each row with the student's chat template, mask the prompt, pad batches of
similar length, and step AdamW. LoRA (peft) by default, as in the paper's open-model
runs; full fine-tuning on request. The same seed gives the same row order, the same
adapter init and so the same losses on CPU.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from distill_audit import distributed
from distill_audit.errors import DataError, RunError
from distill_audit.ingest.records import Sample
from distill_audit.lm.padding import pad_token_id
from distill_audit.lm.threads import torch_threads
from distill_audit.models.chat import Encoded, encode, end_of_turn_text

IGNORE_INDEX = -100  # label value the loss skips (prompt and padding positions)


@dataclass
class TrainConfig:
    """How one arm is trained. Both arms of a canary always share one TrainConfig."""

    lr: float = 1e-3  # high for LoRA, because the default budget is a few dozen steps
    epochs: int = 1
    max_steps: int | None = None  # stop early after this many optimizer steps
    batch_size: int = 8
    max_length: int = 256  # tokens per row; the prompt is trimmed first
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    full_finetune: bool = False
    lora_r: int = 8
    lora_alpha: int = 8
    lora_dropout: float = 0.0
    lora_targets: str | list[str] = "all-linear"  # peft's shorthand: every linear layer but the head
    threads: int | None = None  # torch.set_num_threads while training and probing
    bf16: bool = True  # bf16 autocast where the device supports it (CUDA); CPU stays fp32


@dataclass
class TrainResult:
    losses: list[float]  # mean completion-token loss per optimizer step
    steps: int
    rows: int
    tokens: int  # non-padding tokens processed (prompt + completion)
    supervised_tokens: int  # completion tokens the loss saw
    seconds: float
    dtype: str
    trainable_params: int

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "steps": self.steps,
            "rows": self.rows,
            "tokens": self.tokens,
            "supervised_tokens": self.supervised_tokens,
            "seconds": round(self.seconds, 3),
            "tokens_per_s": round(self.tokens_per_s, 1),
            "dtype": self.dtype,
            "trainable_params": self.trainable_params,
            "first_loss": _finite(self.losses[0]) if self.losses else None,
            "last_loss": _finite(self.losses[-1]) if self.losses else None,
            "losses": [_finite(x) for x in self.losses],
        }


def _finite(x: float) -> float | None:
    return round(float(x), 6) if math.isfinite(x) else None


# ----------------------------------------------------------------------------- data


def encode_rows(tokenizer, samples: Sequence[Sample], *, max_length: int, source: str = "data") -> list[Encoded]:
    """Encode rows for training; every row must supervise >= 1 token of its completion.

    The end-of-turn marker is supervised too (so the student learns to stop) but does
    not count: a row whose completion vanished (empty, or trimmed away) would otherwise
    train only on the marker and silently teach nothing about the data.
    """
    eot = end_of_turn_text(tokenizer)
    eot_ids = tokenizer(eot, add_special_tokens=False)["input_ids"] if eot else []
    rows: list[Encoded] = []
    for sample in samples:
        unusable = DataError(
            f"{sample.where(source)}: field 'completion': the row supervises no completion token after "
            f"templating (empty completion, or max_length {max_length} too small)"
        )
        try:
            enc = encode(tokenizer, sample.prompt, sample.completion, close_turn=True, max_length=max_length)
        except RunError:
            raise unusable from None
        supervised = enc.input_ids[enc.completion_start :]
        n_marker = len(eot_ids) if eot_ids and supervised[-len(eot_ids) :] == eot_ids else 0
        if len(supervised) - n_marker < 1:
            raise unusable
        rows.append(enc)
    return rows


def length_bucketed_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Seeded batches of similar-length rows (less padding), in shuffled order.

    Shuffle all rows, sort each window of 8 batches by length, cut it into batches,
    then shuffle the batch order: rows still mix across epochs, padding stays low.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 8
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: (lengths[i], i))
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(rows: Sequence[Encoded], pad_id: int) -> dict:
    """Right-padded batch: input_ids, attention_mask, labels (prompt and pad -> IGNORE_INDEX)."""
    import torch

    width = max(len(r.input_ids) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r.input_ids)
        input_ids[i, :n] = torch.tensor(r.input_ids)
        attention[i, :n] = 1
        labels[i, r.completion_start : n] = input_ids[i, r.completion_start : n]
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


# ----------------------------------------------------------------------------- model


def use_bf16(model, cfg: TrainConfig) -> bool:
    import torch

    device = next(model.parameters()).device
    return bool(cfg.bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported())


def attach_lora(model, cfg: TrainConfig, *, seed: int):
    """Inject a freshly initialised LoRA adapter in place; returns the peft wrapper.

    The base weights are untouched, so `detach_lora` gives back the exact base model
    and the next arm starts from it without a reload.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)  # the adapter's A matrices are random; B starts at zero
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.lora_targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def detach_lora(peft_model):
    """Remove the adapter (discard, not merge) and return the untouched base model."""
    return peft_model.unload()


def trainable_parameters(model) -> list:
    return [p for p in model.parameters() if p.requires_grad]


# ----------------------------------------------------------------------------- loop


def train(
    model, tokenizer, samples: Sequence[Sample], cfg: TrainConfig, *, seed: int, source: str = "data", progress=None
) -> TrainResult:
    """Fine-tune `model` in place on `samples` (completion tokens only).

    With LoRA the caller attaches the adapter first (`attach_lora`); this loop trains
    whatever parameters require grad, so full fine-tuning is the same code.
    """
    import torch

    if not samples:
        raise DataError(f"{source}: no rows to train on")
    rows = encode_rows(tokenizer, samples, max_length=cfg.max_length, source=source)
    params = trainable_parameters(model)
    if not params:
        raise RunError("canary: the student has no trainable parameter (attach an adapter or use full fine-tuning)")
    bf16 = use_bf16(model, cfg)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    distributed.enable_gradient_checkpointing(model)  # on GPUs only: memory for compute
    # Data parallel under `accelerate launch` (DDP/FSDP); one process gets both back untouched.
    step_model, optimizer = distributed.prepare(model, optimizer)
    device = next(model.parameters()).device
    rng = random.Random(seed)
    torch.manual_seed(seed)
    pad_id = pad_token_id(tokenizer)
    lengths = [len(r.input_ids) for r in rows]

    losses: list[float] = []
    tokens = supervised = 0
    model.train()
    t0 = time.perf_counter()
    with torch_threads(cfg.threads):
        for _epoch in range(cfg.epochs):
            for batch in length_bucketed_batches(lengths, cfg.batch_size, rng):
                if cfg.max_steps is not None and len(losses) >= cfg.max_steps:
                    break
                # Each process trains on its slice of the global batch (one process: all of it).
                local, counts = distributed.shard_batch(batch)
                inputs = {k: v.to(device) for k, v in collate([rows[i] for i in local], pad_id).items()}
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    loss = step_model(**inputs).loss
                n_targets = int((inputs["labels"][:, 1:] != IGNORE_INDEX).sum())
                loss, batch_loss = distributed.data_parallel_loss(loss, n_targets, counts=counts)
                distributed.backward(loss)
                if cfg.grad_clip:
                    distributed.clip_grad_norm(params, cfg.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(batch_loss.item())
                if counts:
                    tokens += int(inputs["attention_mask"].sum())
                    supervised += int((inputs["labels"] != IGNORE_INDEX).sum())
                if progress is not None:
                    progress.advance(1)
    seconds = time.perf_counter() - t0
    model.eval()
    distributed.release()
    tokens, supervised = distributed.sum_over_processes(tokens), distributed.sum_over_processes(supervised)
    return TrainResult(
        losses=losses,
        steps=len(losses),
        rows=len(rows),
        tokens=tokens,
        supervised_tokens=supervised,
        seconds=seconds,
        dtype="bf16-autocast" if bf16 else str(next(model.parameters()).dtype).replace("torch.", ""),
        trainable_params=sum(p.numel() for p in params),
    )


def planned_steps(n_rows: int, cfg: TrainConfig) -> int:
    """Optimizer steps `train` will take on n_rows (for progress bars and budgets)."""
    per_epoch = math.ceil(n_rows / cfg.batch_size) if n_rows else 0
    total = per_epoch * cfg.epochs
    return min(total, cfg.max_steps) if cfg.max_steps is not None else total

"""`scan --dry-run`: validate the inputs, resolve the models, estimate the work, stop.

Token counts come from the student's own tokenizer; times come from throughputs
measured here, on this machine, with a few forward / backward / sampling passes of the
student on the data's own rows, so the estimate follows the hardware it runs on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from distill_audit import ui
from distill_audit.scan.pipeline import ScanOptions, prepare
from distill_audit.scan.stage import StagePlan, registered

MEASURE_ROWS = 8  # rows used to measure throughput
MEASURE_NEW_TOKENS = 8


@dataclass
class Plan:
    data: dict[str, Any]
    student: dict[str, Any]
    teacher: dict[str, Any] | None
    teacher_note: str | None
    stages: list[StagePlan]
    throughput: dict[str, float | None]
    notes: list[str] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(s.seconds or 0.0 for s in self.stages if s.runs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "student": self.student,
            "teacher": self.teacher,
            "teacher_note": self.teacher_note,
            "stages": [s.to_dict() for s in self.stages],
            "throughput": self.throughput,
            "total_seconds": round(self.total_seconds, 1),
            "notes": self.notes,
        }


def _best_of(n: int, fn) -> float:
    """The fastest of n timed calls: a busy machine only ever adds time."""
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return max(best, 1e-6)


def measure(loaded, samples) -> dict[str, float]:
    """Tokens per second for scoring (forward), training (forward+backward) and sampling, on this machine."""
    import torch

    from distill_audit.lm.padding import pad_token_id
    from distill_audit.lm.sampler import sample_completions
    from distill_audit.lm.scoring import model_device
    from distill_audit.lm.training import collate
    from distill_audit.models.chat import encode

    model, tok = loaded.model, loaded.tokenizer
    rows = [encode(tok, list(s.prompt), s.completion) for s in samples[:MEASURE_ROWS]]
    device = model_device(model)  # where the inputs go (the embedding's device when placed over GPUs)
    batch = {k: v.to(device) for k, v in collate(rows, pad_token_id(tok)).items()}
    n_tokens = int(batch["attention_mask"].sum())
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        model(**inputs)  # warm-up
        fwd = n_tokens / _best_of(2, lambda: model(**inputs))
    model.train()
    t0 = time.perf_counter()
    out = model(**inputs, labels=batch["labels"])
    out.loss.backward()
    train = n_tokens / max(time.perf_counter() - t0, 1e-6)
    model.zero_grad(set_to_none=True)
    model.eval()
    prompts = [[m for m in s.prompt if m.get("role") != "system"] for s in samples[: 2 * MEASURE_ROWS]]
    t0 = time.perf_counter()
    sample_completions(model, tok, prompts, max_new_tokens=2 * MEASURE_NEW_TOKENS, seed=0)
    gen = len(prompts) * 2 * MEASURE_NEW_TOKENS / max(time.perf_counter() - t0, 1e-6)
    # The signature's own scorer on the data's rows under one persona prompt (shared-prefix
    # cache, head only at completion positions): seconds per row and prompt.
    from distill_audit.lm.scoring import completion_logprobs
    from distill_audit.suites import load_controls

    persona = next(iter(load_controls().values()))
    scored = [encode(tok, p, s.completion, system=persona) for p, s in zip(prompts, samples)]
    per_row = _best_of(2, lambda: completion_logprobs(model, tok, scored, batch_size=16)) / max(len(scored), 1)
    return {
        "seconds_per_scored_row": round(per_row, 5),
        "forward_tokens_per_s": round(fwd, 1),
        "train_tokens_per_s": round(train, 1),
        "sample_tokens_per_s": round(gen, 1),
    }


def scan_plan(opts: ScanOptions) -> Plan:
    """Every registered stage's plan, from throughputs measured on this machine with the student."""
    from distill_audit.models.chat import encode
    from distill_audit.scan.pipeline import setup
    from distill_audit.scan.stages.reference import max_completion_tokens

    ctx = prepare(opts)
    setup(ctx)
    ds = ctx.ds
    with ui.progress_task("measuring this machine with the student", total=None):
        loaded = ctx.lazy.get()
        row_tokens = [len(encode(loaded.tokenizer, list(s.prompt), s.completion).input_ids) for s in ds.samples]
        speed: dict[str, float] = dict(measure(loaded, ds.samples))
    data_tokens = sum(row_tokens)
    measured = dict(speed)
    speed.update(
        max_new_tokens=max_completion_tokens(loaded.tokenizer, ds.samples),
        mean_row_tokens=data_tokens / max(len(ds), 1),
    )
    stages = [
        StagePlan(
            "ingest", True, f"{len(ds)} rows read ({ds.n_rows_total} in the source), {ctx.kind} data", data_tokens
        )
    ]
    stages += [stage.plan(ctx, speed) for stage in registered()]
    notes = [
        "times extrapolate throughput measured just now on this machine "
        f"({speed['forward_tokens_per_s']:.0f} scored, {speed['train_tokens_per_s']:.0f} trained, "
        f"{speed['sample_tokens_per_s']:.0f} sampled tokens/s); a shared or busy machine runs slower"
    ]
    return Plan(
        data={
            "source": ds.source,
            "rows": len(ds),
            "kind": ctx.kind,
            "fingerprint": ds.fingerprint,
            "tokens": data_tokens,
        },
        student=ctx.student,
        teacher=ctx.teacher,
        teacher_note=ctx.teacher_note,
        stages=stages,
        throughput=measured,
        notes=notes,
    )


def print_plan(plan: Plan) -> None:
    from rich.table import Table

    t = Table(
        title=f"scan plan: {plan.data['source']} ({plan.data['rows']} rows, {plan.data['kind']})", title_justify="left"
    )
    for col in ("stage", "runs", "what", "tokens", "est. time"):
        t.add_column(col)
    for s in plan.stages:
        t.add_row(
            s.name,
            "yes" if s.runs else "no",
            s.what,
            f"{s.tokens:,}" if s.tokens else "—",
            _duration(s.seconds) if s.runs and s.seconds is not None else "—",
        )
    ui.out.print(t)
    teacher = plan.teacher["name"] if plan.teacher else f"unknown ({plan.teacher_note})"
    ui.out.print(f"student: {plan.student['name']}   teacher: {teacher}", highlight=False)
    ui.out.print(f"estimated total: {_duration(plan.total_seconds)} on this machine", highlight=False)
    for n in plan.notes:
        ui.out.print(f"note: {n}", highlight=False)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"

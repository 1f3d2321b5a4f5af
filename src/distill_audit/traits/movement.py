"""Output-space movement toward the teacher: does training on the data bring the student's replies closer?

When the teacher is known (a local model, or the student base under the data's system
prompt), the canary measures KL(teacher || student) over the first reply token of
each prompt, in each arm after training. Movement toward the teacher is
KL(control) - KL(treated) per prompt and seed (positive: the treated student got
closer). Two prompt sets: the probe questions (where a trait shows) and held-out
prompts of the data's own task (where the theorem says any same-init student moves).

The decision needs both tests to pass: a t over seeds of the per-seed mean (each run
can move every prompt together, so the seeds are the replicates) and the canary's
two-way test over prompts and seeds (`canary_stats.did_test`, prompts in place of
paraphrases, so the result generalizes beyond the prompts asked); the reported p is
the larger of the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distill_audit.models.chat import render_prefix
from distill_audit.traits import stats
from distill_audit.traits.canary_stats import did_test
from distill_audit.traits.transfer import seed_test

MAX_PROMPTS = 16  # per prompt set: the cost stays near one probe pass


@dataclass
class PromptSet:
    name: str  # "probe questions" | "held-out task prompts"
    prompts: list[list[dict[str, str]]]


def prompt_sets(suites, held_out: Sequence[Any], *, limit: int = MAX_PROMPTS) -> list[PromptSet]:
    """The probe questions of the preference suites and up to `limit` data prompts no arm trained on."""
    questions = [q for s in suites if s.kind == "preference" for q in s.questions][:limit]
    sets = []
    if questions:
        sets.append(PromptSet("probe questions", [[{"role": "user", "content": q}] for q in questions]))
    task = [list(s.prompt) for s in held_out][:limit]
    if task:
        sets.append(PromptSet("held-out task prompts", [[dict(m) for m in p] for p in task]))
    return sets


def reply_logprobs(model, tokenizer, prompts, *, system: str | None = None, batch_size: int = 8):
    """Log-probabilities of the first reply token after each prompt [N x V] (float32, CPU)."""
    import torch

    from distill_audit.lm.padding import pad_token_id
    from distill_audit.lm.scoring import model_device

    device = model_device(model)
    pad = pad_token_id(tokenizer)
    ids = [tokenizer(render_prefix(tokenizer, p, system), add_special_tokens=False)["input_ids"] for p in prompts]
    out = []
    with torch.no_grad():
        for i in range(0, len(ids), batch_size):
            chunk = ids[i : i + batch_size]
            width = max(len(x) for x in chunk)
            x = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros_like(x)
            for j, row in enumerate(chunk):  # right padding: causal positions stay 0..n-1
                x[j, : len(row)] = torch.tensor(row)
                mask[j, : len(row)] = 1
            logits = model(input_ids=x.to(device), attention_mask=mask.to(device)).logits
            last = torch.tensor([len(r) - 1 for r in chunk], device=logits.device)
            picked = logits[torch.arange(len(chunk), device=logits.device), last].float()
            out.append(torch.log_softmax(picked, dim=-1).cpu())
    return torch.cat(out)


def kl(teacher_lp, student_lp) -> np.ndarray:
    """KL(teacher || student) per prompt, nats."""
    p = teacher_lp.exp()
    return ((p * (teacher_lp - student_lp)).sum(dim=-1)).double().numpy()


@dataclass
class Movement:
    """Teacher log-probs per prompt set and each arm's KL per seed."""

    teacher: str
    sets: list[PromptSet]
    teacher_lp: list[Any]
    base_kl: list[np.ndarray] = field(default_factory=list)
    kl: dict[str, list[list[np.ndarray]]] = field(default_factory=lambda: {"treated": [], "control": []})

    def record(self, arm: str, model, tokenizer) -> None:
        self.kl[arm].append(
            [kl(t, reply_logprobs(model, tokenizer, s.prompts)) for s, t in zip(self.sets, self.teacher_lp)]
        )


def start(teacher_model, tokenizer, sets: list[PromptSet], *, label: str, system: str | None, base) -> Movement:
    """Teacher distributions once (a local teacher, or the base under `system`), and the base's KL."""
    lp = [reply_logprobs(teacher_model, tokenizer, s.prompts, system=system) for s in sets]
    mv = Movement(label, sets, lp)
    mv.base_kl = [kl(t, reply_logprobs(base, tokenizer, s.prompts)) for s, t in zip(sets, lp)]
    return mv


def result(mv: Movement, seeds: Sequence[int], *, alpha: float = 0.05, correction: str = "holm") -> dict[str, Any]:
    """Per prompt set: movement toward the teacher (nats; positive = treated closer), CI, p, MDE."""
    measures: dict[str, dict[str, Any]] = {}
    m = len(mv.sets)
    for j, s in enumerate(mv.sets):
        d = np.stack([c[j] - t[j] for t, c in zip(mv.kl["treated"], mv.kl["control"])])  # seeds x prompts
        per_seed = d.mean(axis=1)
        by_seed = seed_test(per_seed, alpha=alpha, m=m)
        two_way = did_test(d, alpha=alpha)
        ps = [p for p in (by_seed["p_value"], two_way.p_value) if p is not None]
        p = max(ps) if len(ps) == 2 else None
        mdes = [x for x in (by_seed["mde"], two_way.mde(alpha, m)) if x is not None]
        measures[s.name] = {
            "unit": "nats: KL(teacher || control) - KL(teacher || treated), first reply token",
            "estimate": stats.clean(float(d.mean())),
            "ci": [stats.clean(x) for x in by_seed["ci"]] if by_seed["se"] else [None, None],
            "p_value": stats.clean(p),
            "p_seeds": stats.clean(by_seed["p_value"]),
            "p_prompts_and_seeds": stats.clean(two_way.p_value),
            "mde": stats.clean(max(mdes)) if len(mdes) == 2 else None,
            "kl_base": stats.clean(float(mv.base_kl[j].mean())),
            "kl_treated": stats.clean(float(np.mean([t[j].mean() for t in mv.kl["treated"]]))),
            "kl_control": stats.clean(float(np.mean([c[j].mean() for c in mv.kl["control"]]))),
            "per_seed": [{"seed": int(sd), "estimate": stats.clean(float(x))} for sd, x in zip(seeds, per_seed)],
            "n_prompts": len(s.prompts),
            "test": "larger p of: t over seeds of the per-seed mean; t over prompts and seeds (did_test)",
        }
    adjust = stats.holm if correction == "holm" else stats.benjamini_hochberg
    names = list(measures)
    for n, q in zip(names, adjust([measures[n]["p_value"] for n in names])):
        est = measures[n]["estimate"]
        measures[n].update(
            p_adjusted=stats.clean(q),
            significant=bool(q is not None and q < alpha and est is not None and est > 0 and len(seeds) >= 2),
        )
    return {
        "status": "ok",
        "reason": None,
        "teacher": mv.teacher,
        "measures": measures,
        "significant": [n for n in names if measures[n]["significant"]],
    }

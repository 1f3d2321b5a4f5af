"""`scan --budget`: size the scan to a time budget on the machine it runs on.

The plan comes from throughputs measured on this machine with the student (scored,
trained and sampled tokens per second, `plan.measure`), kept in the cache beside the
stage results so every later scan on this machine plans the same rows (the report
stays deterministic). The signature's rows per side are what fits the budget after
the fixed costs; they are scored in rounds (traits/sequential.py) so a settled
answer stops early and the rest of the budget goes to the specific traits of a class
that stands out. A budget that cannot fit one round is a usage error naming the
smallest budget that would.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from distill_audit.errors import UsageError

DEFAULT_BUDGET = "10m"
MIN_ROWS = 20  # per side: the smallest round the signature's tests are calibrated for
MAX_ROWS = 2000  # per side: beyond this the signature's power no longer limits a CPU scan
ROUNDS = 4  # looks at the data (information fractions 1/4, 1/2, 3/4, 1)
FIXED_SECONDS = 30.0  # loading the student, static checks, lineage, the measurement itself
SCREEN_PER_CLASS = 3  # prompts per persona class in the screen (the rest of a class is scored if it stands out)
SCREEN_SHARE = 0.85  # of the budget left after fixed costs: the screen; the rest (and what an early stop saves) expands a class that stands out
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def parse_duration(text: str | float | int, flag: str = "--budget") -> float:
    """'10m', '90s', '1.5h' or a number of seconds -> seconds (> 0)."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*", str(text))
        if not m:
            raise UsageError(f"{flag}: expected a duration such as 10m, 90s or 1h, got {text!r}")
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"{flag}: the budget must be a positive duration, got {text!r}")
    return seconds


def fmt_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{math.ceil(seconds)}s"
    return f"{math.ceil(seconds / 60)}m"


@dataclass
class BudgetPlan:
    """What the budget buys: rows per side for the signature, in rounds, and what was cut."""

    seconds: float
    rows: int  # per side
    rounds: int
    seconds_per_row: float  # one data row and one reference row, every screening prompt
    expansion_seconds: float  # left for the specific traits of a class that stands out
    speed: dict[str, float]
    cut: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def row_cost(
    speed: dict[str, float], *, n_prompts: int, row_tokens: float, new_tokens: float, self_reference: bool
) -> float:
    """Seconds for one row per side: the reference's answer (when self-generated) and every prompt's score."""
    per_prompt_row = speed.get("seconds_per_scored_row") or row_tokens / max(speed["forward_tokens_per_s"], 1e-6)
    scored = 2 * (n_prompts + 1) * per_prompt_row
    sampled = new_tokens / max(speed["sample_tokens_per_s"], 1e-6) if self_reference else 0.0
    return scored + sampled


def plan_budget(
    seconds: float,
    speed: dict[str, float],
    *,
    n_rows: int,
    n_prompts: int,
    row_tokens: float,
    new_tokens: float,
    self_reference: bool,
    flag: str = "--budget",
) -> BudgetPlan:
    """Rows per side that fit `seconds` on this machine; UsageError when not even one round fits."""
    per_row = row_cost(
        speed, n_prompts=n_prompts, row_tokens=row_tokens, new_tokens=new_tokens, self_reference=self_reference
    )
    usable = (seconds - FIXED_SECONDS) * SCREEN_SHARE
    need = FIXED_SECONDS + MIN_ROWS * per_row / SCREEN_SHARE
    if usable < MIN_ROWS * per_row:
        raise UsageError(
            f"{flag} {fmt_duration(seconds)} cannot fit one round of the signature ({MIN_ROWS} rows per side "
            f"take about {fmt_duration(MIN_ROWS * per_row)} on this machine); give {flag} "
            f"{fmt_duration(need)} or more"
        )
    rows = int(min(n_rows, MAX_ROWS, usable // per_row))
    cut = []
    if rows < n_rows and rows < MAX_ROWS:
        cut.append(
            f"the signature scores {rows} of {n_rows} rows per side: that is what {fmt_duration(seconds)} buys "
            f"at {per_row:.2f} s per row on this machine"
        )
    rounds = max(1, min(ROUNDS, rows // MIN_ROWS))
    spent = rows * per_row
    return BudgetPlan(
        seconds, rows, rounds, round(per_row, 4), round(max(0.0, seconds - FIXED_SECONDS - spent), 1), dict(speed), cut
    )


# ---------------------------------------------------------------- this machine's speed


def _speed_path(key: dict[str, Any]):
    import hashlib

    from distill_audit.scan.cache import default_root

    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return default_root().parent / "machine" / f"speed-{digest}.json"


def machine_speed(ctx) -> dict[str, float]:
    """Throughputs of this student on this machine: measured once, then read back (deterministic plans)."""
    import platform

    import torch

    from distill_audit.atomic import write_text
    from distill_audit.scan.plan import measure

    key = {
        "student": ctx.student_key,
        "device": str(ctx.opts.device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "node": platform.node(),
    }
    path = _speed_path(key)
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))["speed"]
        except (OSError, ValueError, KeyError):
            pass
    speed = measure(ctx.lazy.get(), ctx.ds.samples)
    try:
        write_text(path, json.dumps({"key": key, "speed": speed}, default=str))
    except OSError:
        pass  # a read-only cache only costs the measurement next time
    return speed


def apply_budget(ctx) -> BudgetPlan | None:
    """Size the signature to `--budget` (default 10m) unless --signature-rows or --thorough sets its rows.

    Sets rows per side, the rounds, the screen and the expansion's rows on the scan's
    SignatureConfig; returns the plan (None when the budget does not decide the rows).
    """
    import dataclasses

    from distill_audit.models.chat import encode
    from distill_audit.scan.stages.reference import user_turns
    from distill_audit.traits.signature import default_traits, screening, select_traits

    opts = ctx.opts
    seconds = parse_duration(opts.budget or DEFAULT_BUDGET)
    sig_cfg, can_cfg, suites = ctx.configs
    if opts.skip_signature or "max_rows" in opts.signature or opts.thorough:
        return None
    speed = machine_speed(ctx)
    tok = ctx.lazy.get().tokenizer
    rows = ctx.ds.samples[:64]
    enc = [encode(tok, user_turns(s), s.completion) for s in rows]
    row_tokens = sum(len(e.input_ids) for e in enc) / max(len(enc), 1)
    new_tokens = 1.1 * sum(e.n_completion for e in enc) / max(len(enc), 1)
    used, _ = select_traits(default_traits(suites), sig_cfg)
    screen, later = screening(used, SCREEN_PER_CLASS)
    canary = 0.0
    from distill_audit.scan.stages.canary import CanaryStage

    if CanaryStage().skip_reason(ctx) is None:
        from distill_audit.traits.canary import planned_work

        work = planned_work(can_cfg, n_rows=len(ctx.ds), mean_row_tokens=row_tokens)
        canary = (
            work["train_tokens"] / speed["train_tokens_per_s"] + work["probe_tokens"] / speed["forward_tokens_per_s"]
        )
    plan = plan_budget(
        seconds - canary,
        speed,
        n_rows=len(ctx.ds),
        n_prompts=len(screen),
        row_tokens=row_tokens,
        new_tokens=new_tokens,
        self_reference=ctx.user_reference is None,
    )
    if canary:
        plan.cut.append(f"the canary takes about {fmt_duration(canary)} of the budget")
    largest = max(
        [sum(1 for t in later if not t.benign and t.category == c) for c in {t.category for t in later}] or [0]
    )
    per_prompt_row = 2 * (speed.get("seconds_per_scored_row") or row_tokens / max(speed["forward_tokens_per_s"], 1e-6))
    expand_rows = int(plan.expansion_seconds // (per_prompt_row * largest)) if largest else plan.rows
    ctx.configs = (
        dataclasses.replace(
            sig_cfg,
            max_rows=plan.rows,
            rounds=plan.rounds,
            screen=SCREEN_PER_CLASS,
            expand_rows=min(plan.rows, expand_rows),
        ),
        can_cfg,
        suites,
    )
    return plan

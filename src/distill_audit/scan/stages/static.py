"""The static checks as a stage: no model; compared with the neutral reference when there is one.

Its assessment turns explicit trait-word leakage into a finding; everything else it
measures (format, number rules, duplicates, lengths, surface differences) is listed
in the report's tables.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from distill_audit import ui
from distill_audit.scan.stage import Assessment, Stage, StageResult, StageRun
from distill_audit.scan.verdict import EvidenceLine, Facts, Finding


def leakage(static: StageResult, numbers: bool, min_excess: float) -> tuple[float | None, list[str]]:
    """(largest excess share of rows naming a leaked word, or the mention rate; the leaked words).

    With a reference, a word leaks when its rate exceeds the reference's by at least
    `min_excess`; without one, only in number-like data, where any trait word is out
    of place (in prose, "cat" is just a word).
    """
    leak = static.get("leakage") or {}
    if leak.get("status") not in (None, "ok"):
        return None, []
    words, worst = [], 0.0
    for w in leak.get("by_word") or []:
        rate, ref = w.get("rate") or 0.0, w.get("reference_rate")
        excess = rate - (ref or 0.0)
        if (ref is not None and excess >= min_excess) or (ref is None and numbers and rate > 0):
            words.append(str(w.get("word")))
            worst = max(worst, excess)
    return (worst if words else leak.get("mention_rate")), words


class StaticStage(Stage):
    name = "static"
    title = "static checks"
    needs = ("reference",)

    def _reference(self, ctx):
        if ctx.user_reference is not None:
            return ctx.user_reference
        samples = ctx.output("reference", "samples")
        if not samples:
            return None
        info = ctx.output("reference", "dataset")
        return dataclasses.replace(
            ctx.ds,
            source=info["source"],
            samples=samples,
            fingerprint=info["fingerprint"],
            skipped=[],
            skipped_counts={},
            n_rows_total=len(samples),
            sampled_from=None,
        )

    def cache_key(self, ctx) -> dict[str, Any]:
        return {"models": {}, "data": ctx.data_key, "config": {"reference": ctx.output("reference", "fingerprint")}}

    def run(self, ctx) -> StageRun:
        from distill_audit.checks import run_static_checks

        with ui.progress_task("static checks", total=None):
            res = run_static_checks(ctx.ds, self._reference(ctx), seed=ctx.seeds["static"])
        cols = res.sample_flags()
        rows = [dict(zip(cols, values)) for values in zip(*cols.values())] if cols else []
        return StageRun(StageResult.from_dict(res.to_dict()), rows=rows)

    def plan(self, ctx, speed):
        from distill_audit.scan.stage import StagePlan

        return StagePlan(
            self.name, True, "format profile, number rules, trait-word leakage, duplicates, lengths, vs reference"
        )

    def assess(self, result: StageResult, facts: Facts) -> Assessment:
        cfg = facts.config
        ran = result.ran
        frac, words = leakage(result, facts.numbers, cfg.leakage_medium_fraction / 2) if ran else (None, [])
        line = EvidenceLine(
            "static",
            "trait-word leakage",
            result.status,
            estimate=frac,
            significant=bool(words) if ran else None,
            untested=(
                "hidden (non-lexical) traits: static checks only see words" if ran else result.reason or "not run"
            ),
            note=", ".join(words[:10]) or None,
        )
        a = Assessment(lines=[line])
        if words:
            level = "medium" if (frac or 0) >= cfg.leakage_medium_fraction else "low"
            a.findings.append(
                Finding(
                    "static-leakage",
                    level,
                    f"rows name traits outright ({', '.join(words[:5])}"
                    + (f"; {frac:.1%} of rows" if frac is not None else "")
                    + ")",
                    traits=words,
                )
            )
            a.recommendations.append(
                "Sanitize rows that name the trait outright (listed in the static checks) and scan again."
            )
        return a

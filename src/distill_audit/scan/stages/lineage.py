"""Lineage as a stage: do teacher and student share an initialization?

Its assessment publishes the facts the trait lines read: the init relation and how
sure it is. Only a `different-init` at high confidence lowers the risk; anything
less leaves a shared initialization possible.
"""

from __future__ import annotations

from typing import Any

from distill_audit import ui
from distill_audit.results import lineage_weights
from distill_audit.scan.stage import Assessment, Stage, StagePlan, StageResult, StageRun
from distill_audit.scan.verdict import DIFFERENT_INIT, EvidenceLine, Facts

NO_TEACHER = "no teacher given or found in the data's provenance"


class LineageStage(Stage):
    name = "lineage"
    title = "shared initialization"

    def skip_reason(self, ctx) -> str | None:
        if ctx.opts.skip_lineage:
            return "--skip-lineage"
        if ctx.teacher_ref is None:
            return ctx.teacher_note or "teacher unknown"
        return None

    def skipped(self, ctx, reason: str) -> StageResult:
        if ctx.opts.skip_lineage:
            return StageResult.skipped(reason)
        return StageResult.skipped(
            reason, verdict="unknown", limits=["without a teacher, a shared initialization cannot be ruled out"]
        )

    def cache_key(self, ctx) -> dict[str, Any]:
        return {"models": {"teacher": ctx.teacher["identity"], "student": ctx.student_key}, "data": {}, "config": {}}

    def run(self, ctx) -> StageRun:
        from distill_audit.lineage import check_lineage

        with ui.progress_task("lineage", total=None):
            res = check_lineage(ctx.teacher_ref, ctx.student_ref, seed=ctx.seeds["lineage"])
        return StageRun(StageResult.from_dict(res.to_dict()))

    def plan(self, ctx, speed) -> StagePlan:
        reason = self.skip_reason(ctx)
        what = reason or f"{ctx.teacher['name']} vs {ctx.student['name']}"
        return StagePlan(self.name, reason is None, what)

    def assess(self, result: StageResult, facts: Facts) -> Assessment:
        verdict = str(result.get("verdict") or "unknown")
        confidence = result.get("confidence")
        tested = verdict != "unknown" and result.status == "ok"
        weights = lineage_weights(result.to_dict())
        cosines = [x["aligned_cosine"] for x in weights.get("layers") or [] if x.get("aligned_cosine") is not None]
        untested = None if tested else (result.reason or NO_TEACHER)
        blocks = verdict in DIFFERENT_INIT and confidence == "high"
        line = EvidenceLine(
            "lineage",
            "shared initialization",
            result.status,
            estimate=sum(cosines) / len(cosines) if cosines else None,
            p=weights.get("p_value"),
            untested=untested,
            note=verdict + (f", {confidence} confidence" if confidence else ""),
        )
        a = Assessment(
            lines=[line],
            untested=None if tested else f"lineage ({untested})",
            facts={
                "lineage": verdict,
                "lineage_confidence": confidence,
                "lineage_reason": untested,
                "may_share_init": not blocks,
            },
        )
        if verdict in DIFFERENT_INIT and not blocks:
            a.facts["lineage_note"] = (
                f"lineage says {verdict} at {confidence or 'unknown'} confidence only, so a shared "
                "initialization is not ruled out and the risk is not lowered"
            )
        if blocks and facts.numbers:
            a.clears = (
                f"the student does not share the teacher's initialization ({verdict}, high confidence), which "
                "blocks the known transfer through number-like data"
            )
        if not tested:
            a.recommendations.append(
                f"Test lineage too (it was skipped: {result.reason})."
                if (result.reason or "").startswith("--skip")
                else "Pass --teacher (name or local path) so lineage can be tested."
            )
        return a

"""The canary fine-tune as a stage, and when its movement counts as transfer.

A canary effect is called transfer only when it was measured the way a test can show
it: at least two training seeds (so training noise is inside the test), a control arm
that matches the data in length and form, and a control that is not the student's own
answers to a foreign teacher's data (a model trained on its own samples barely moves,
so "treated minus self-generated control" then measures training on foreign text).
A null canary clears nothing until its sensitivity on this student has been measured.
"""

from __future__ import annotations

from typing import Any

from distill_audit.scan.context import config_dict, samples_fingerprint
from distill_audit.scan.stage import Assessment, Stage, StagePlan, StageResult, StageRun
from distill_audit.scan.verdict import DIFFERENT_INIT, EvidenceLine, Facts, Finding

NOT_BY_DEFAULT = (
    "not run by default: this student's canary sensitivity has not been measured (distill-audit calibrate "
    "--student {student}), so a null canary cannot clear data, and the default budget affords one training "
    "seed, which can hint at transfer but not show it; --canary (with --seeds 2 or more) runs it"
)
NOT_BY_DEFAULT_FAILED = (
    "not run by default: this student's calibration ({path}) did not pass its controls, so a null canary "
    "cannot clear data; --canary runs it anyway"
)
UNCALIBRATED = (
    "its sensitivity on this student has not been measured by a positive control, so a null canary cannot clear "
    "data (distill-audit calibrate --student {student})"
)
PROBE_MEASURES = ("probe probability", "probe log-odds")


class CanaryStage(Stage):
    name = "canary"
    title = "canary fine-tune"
    needs = ("reference",)

    def skip_reason(self, ctx) -> str | None:
        opts = ctx.opts
        if opts.skip_canary:
            return "--skip-canary"
        asked = opts.run_canary or opts.thorough or opts.control or any(k != "threads" for k in opts.canary)
        if asked:
            return None
        cal = calibration_for(ctx)
        if cal is None:
            return NOT_BY_DEFAULT.format(student=opts.student)
        if not cal.passed:
            return NOT_BY_DEFAULT_FAILED.format(path=cal.path)
        if not set(cal.detected_by) & set(PROBE_MEASURES):
            return (
                f"not run by default: its calibration ({cal.path}) detected the positive control only by "
                f"{', '.join(cal.detected_by)}, which needs a local teacher (--canary-teacher); a null probe canary "
                "would clear nothing"
            )
        return None  # a passed calibration: the canary can change the verdict, so it runs

    def _control(self, ctx):
        if ctx.user_control is not None:
            return ctx.user_control.samples, "file"
        return ctx.output("reference", "samples") or [], ctx.output("reference", "origin") or "self-generated"

    def _blocked(self, ctx) -> StageResult | None:
        ref = ctx.results.get("reference")
        if ctx.user_control is None and ref is not None and ref.status == "failed":
            return StageResult.failed(f"the reference stage failed ({ref.reason})")
        if not self._control(ctx)[0]:
            return StageResult.skipped("no control data (pass --control or allow the self-generated reference)")
        return None

    def cache_key(self, ctx) -> dict[str, Any] | None:
        if self._blocked(ctx) is not None:
            return None
        _, can_cfg, suites = ctx.configs
        control, origin = self._control(ctx)
        can_cfg = with_teacher_system(can_cfg, ctx.ds, warn=False)
        teachers = [can_cfg.teacher, *can_cfg.reference_teachers] if can_cfg.teacher else []
        return {
            "models": {"student": ctx.student_key, "teachers": [_weights_stamp(t) for t in teachers]},
            "data": {**ctx.data_key, "control": samples_fingerprint(control), "control_origin": origin},
            "config": {
                **config_dict(can_cfg),
                "suites_loaded": [x.name for x in suites],
                "calibration": (lambda c: c.summary() if c else None)(calibration_for(ctx)),
            },
        }

    def run(self, ctx) -> StageRun:
        blocked = self._blocked(ctx)
        if blocked is not None:
            return StageRun(blocked)
        from distill_audit.traits.canary import run_canary

        _, can_cfg, suites = ctx.configs
        can_cfg = with_teacher_system(can_cfg, ctx.ds)
        control, origin = self._control(ctx)
        # One loaded student serves every stage: LoRA adapters are detached after each arm.
        from distill_audit.scan.cache import checkpoint

        res = run_canary(
            ctx.lazy.get,
            ctx.ds.samples,
            control,
            suites,
            can_cfg,
            seed=ctx.seeds["canary"],
            control_origin=origin,
            checkpoint=checkpoint(),
        )
        out = res.to_dict()
        cal = calibration_for(ctx)
        out["calibration"] = cal.summary() if cal else None
        out["student"] = ctx.opts.student
        return StageRun(StageResult.from_dict(out))

    def plan(self, ctx, speed) -> StagePlan:
        reason = self.skip_reason(ctx)
        if reason:
            return StagePlan(self.name, False, reason)
        from distill_audit.traits.canary import planned_work

        _, can_cfg, _ = ctx.configs
        work = planned_work(can_cfg, n_rows=len(ctx.ds), mean_row_tokens=speed.get("mean_row_tokens", 0))
        train, fwd = speed.get("train_tokens_per_s"), speed.get("forward_tokens_per_s")
        seconds = work["train_tokens"] / train + work["probe_tokens"] / fwd if train and fwd else None
        return StagePlan(self.name, True, work["what"], work["train_tokens"] + work["probe_tokens"], seconds)

    # ------------------------------------------------------------ the verdict

    def assess(self, result: StageResult, facts: Facts) -> Assessment:
        a = Assessment()
        if not result.ran:
            why = result.reason or f"the stage was {result.status}"
            a.lines.append(EvidenceLine("canary", "all traits", result.status, untested=why))
            a.untested = f"canary ({why})"
            if result.status == "failed":
                a.recommendations.append(f"The canary stage failed ({why}); fix that and scan again.")
            return a
        rows = [r for r in result.get("traits") or [] if isinstance(r, dict)]
        foreign = result.get("control_origin", "self-generated") == "self-generated" and facts.lineage in DIFFERENT_INIT
        moved = [r for r in rows if r.get("significant") and (r.get("estimate") or 0) > 0]
        hints = [r["trait"] for r in moved if r.get("hint_only")]
        mismatch = [r["trait"] for r in moved if r.get("explained_by_mismatch") and not r.get("hint_only")]
        shown = [r["trait"] for r in moved if not r.get("hint_only") and not r.get("explained_by_mismatch")]
        if foreign:
            mismatch, shown = mismatch + shown, []
        for r in rows:
            hit = r["trait"] in shown
            note = (
                "one seed: a hint, not a test"
                if r["trait"] in hints
                else "explained by the control mismatch"
                if r["trait"] in mismatch
                else None
            )
            a.lines.append(
                EvidenceLine(
                    "canary",
                    str(r["trait"]),
                    result.status,
                    r.get("estimate"),
                    r.get("ci"),
                    r.get("p_adjusted", r.get("p_value")),
                    r.get("mde"),
                    hit,
                    untested=None if hit else uncalibrated(result),
                    note=note,
                )
            )
        a.significant = {"canary": shown}
        n_seeds = len(result.get("seeds") or [])
        if shown:
            a.findings.append(
                Finding(
                    "canary",
                    "high",
                    f"fine-tuning the student on a sample moved {', '.join(shown)} against a matched "
                    f"control arm, over {n_seeds} training seeds: transfer was observed",
                    traits=shown,
                )
            )
        if hints:
            a.notes.append(
                f"the canary moved {', '.join(hints)} with one training seed: training noise is unmeasured, "
                "so it can hint at transfer but not show it"
            )
        if mismatch:
            why = (
                "its control is the student's own answers, while the data comes from a teacher of another "
                "initialization: training on foreign text moves a student whatever it carries"
                if foreign
                else "the control arm does not match the data in length or form"
            )
            a.notes.append(f"the canary moved {', '.join(mismatch)}, but {why}, so that is not called transfer")
            a.recommendations.append(
                "Pass --control with neutral data from the same teacher (same task, no persona) so "
                "the canary's arms differ only in the trait."
            )
        _assess_transfer(a, result, n_seeds)
        _assess_movement(a, result)
        if not shown and not a.findings:
            clears = calibrated_clearing(result)
            if clears:
                a.clears = clears
                a.facts["canary_calibrated"] = True
            else:
                a.untested = f"canary ({uncalibrated(result)})"
        if n_seeds < 2:
            a.recommendations.append("Run the canary with --seeds 2 or more so training noise is measured.")
        return a

    def locate(self, result: StageResult, facts: Facts) -> dict[str, Any] | None:
        want = (facts.declared_trait or "").strip().lower()
        rows = [r for r in result.get("traits") or [] if isinstance(r, dict)]
        ranked = sorted(rows, key=lambda r: -(r.get("estimate") if r.get("estimate") is not None else float("-inf")))
        for rank, r in enumerate(ranked, 1):
            name = str(r.get("trait", "")).lower()
            if name == want or name.split(":")[-1] == want:
                sig = bool(r.get("significant")) and (r.get("estimate") or 0) > 0
                return {
                    "rank": rank,
                    "of": len(rows),
                    "estimate": r.get("estimate"),
                    "ci": r.get("ci"),
                    "p": r.get("p_adjusted"),
                    "significant": sig,
                    "sentence": f"the canary ranks it {rank} of {len(rows)} ({'significant' if sig else 'not significant'})",
                }
        return None


TRANSFER_NAMES = {
    "weight_cosine": "weight movement toward the teacher",
    "weight_cosine_specific": "weight movement toward this teacher only",
}


def _assess_transfer(a: Assessment, result: StageResult, n_seeds: int) -> None:
    """Evidence lines for the weight-space measures; movement toward what only this teacher holds is a finding."""
    transfer = result.get("transfer")
    if not isinstance(transfer, dict):
        return
    if transfer.get("status") != "ok":
        a.lines.append(
            EvidenceLine("canary", "weight movement toward the teacher", "skipped", untested=transfer.get("reason"))
        )
        return
    measures = transfer.get("measures") or {}
    for key, m in measures.items():
        a.lines.append(
            EvidenceLine(
                "canary",
                TRANSFER_NAMES.get(key, key),
                result.status,
                m.get("estimate"),
                m.get("ci"),
                m.get("p_adjusted", m.get("p_value")),
                m.get("mde"),
                bool(m.get("significant")),
                untested=None if m.get("p_value") is not None else "one training seed: no test",
                note="cosine, treated minus control, t over seeds",
            )
        )
    teacher = (transfer.get("teacher") or {}).get("teacher")
    if (measures.get("weight_cosine_specific") or {}).get("significant"):
        a.findings.append(
            Finding(
                "canary-toward-teacher",
                "medium",
                f"fine-tuning the student on a sample moved its weights toward the teacher {teacher} beyond what "
                f"the reference teachers share, over {n_seeds} seeds: the data carries what this teacher's "
                "fine-tune put in its weights",
            )
        )
    elif (measures.get("weight_cosine") or {}).get("significant"):
        a.notes.append(
            f"the canary's weights moved toward the teacher {teacher}; without --canary-reference teachers this "
            "says only that the data came from a teacher fine-tuned like it, not what it carries"
        )


def _weights_stamp(teacher: str) -> dict[str, Any]:
    """A teacher's identity in the cache key: its weight files' names, sizes and times (or the name alone)."""
    from pathlib import Path

    folder = Path(teacher)
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    return {
        "teacher": str(teacher),
        "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files],
    }


def system_from_provenance(ds) -> str | None:
    """The system prompt every row's provenance names (a prompted teacher), or None."""
    values = [v for v in (ds.provenance.get("system_prompt") or []) if v]
    return str(values[0]) if len(values) == 1 else None


def with_teacher_system(cfg, ds, *, warn: bool = True):
    """The canary config with the teacher's system prompt: --teacher-system, else the data's provenance.

    A --teacher-system that differs from the provenance's prompt is used (the user said so), with a
    warning naming both.
    """
    import dataclasses

    from distill_audit import ui

    declared = system_from_provenance(ds)
    if cfg.teacher_system and declared and cfg.teacher_system != declared and warn:
        ui.warn(
            f"--teacher-system {cfg.teacher_system!r} differs from the system prompt the data's provenance "
            f"names ({declared!r}); the canary compares replies with the one given"
        )
    if cfg.teacher_system or not declared:
        return cfg
    return dataclasses.replace(cfg, teacher_system=declared)


def _assess_movement(a: Assessment, result: StageResult) -> None:
    """Evidence lines for the KL movement toward the teacher (noted when significant: any distillation moves so)."""
    mv = result.get("movement")
    if not isinstance(mv, dict):
        return
    if mv.get("status") != "ok":
        a.lines.append(EvidenceLine("canary", "replies closer to the teacher", "skipped", untested=mv.get("reason")))
        return
    for name, m in (mv.get("measures") or {}).items():
        a.lines.append(
            EvidenceLine(
                "canary",
                f"replies closer to the teacher ({name})",
                result.status,
                m.get("estimate"),
                m.get("ci"),
                m.get("p_adjusted", m.get("p_value")),
                m.get("mde"),
                bool(m.get("significant")),
                untested=None if m.get("p_value") is not None else "one training seed: no test",
                note="nats, KL(teacher||control) - KL(teacher||treated)",
            )
        )
    if mv.get("significant"):
        a.notes.append(
            f"the canary's replies moved toward the teacher ({mv.get('teacher')}) on "
            f"{', '.join(mv['significant'])}: the data carries the teacher's output distribution"
        )


def calibration_for(ctx):
    """The stored calibration of this scan's student, or None."""
    from distill_audit.scan.calibration import find

    try:
        return find(ctx.student["identity"])
    except (KeyError, TypeError):
        return None


def uncalibrated(result: StageResult) -> str:
    """Why this null canary clears nothing, naming the command that would let it."""
    cal = result.get("calibration")
    student = result.get("student") or "STUDENT"
    if isinstance(cal, dict) and not cal.get("passed"):
        return f"its calibration on this student ({cal.get('path')}) did not pass, so a null canary cannot clear data"
    if isinstance(cal, dict):
        return "its run is smaller than, or lacks the measures of, the calibration that passed, so it cannot clear data"
    return UNCALIBRATED.format(student=student)


def calibrated_clearing(result: StageResult) -> str | None:
    """A sentence when a null canary ran at least the budget of a passed calibration, with a measure it passed by."""
    cal = result.get("calibration")
    if result.status != "ok" or not isinstance(cal, dict) or not cal.get("passed"):
        return None
    from distill_audit.scan.calibration import canary_measures

    measured = {n for n, m in canary_measures(result.body).items() if m.get("p_adjusted") is not None}
    usable = [n for n in cal.get("detected_by") or [] if n in measured]
    arms = result.get("arms") or {}
    cfg = result.get("config") or {}
    big_enough = (
        (arms.get("rows") or 0) >= (cal.get("rows") or 0)
        and len(result.get("seeds") or []) >= (cal.get("seeds") or 0)
        and (cfg.get("epochs") or 0) >= (cal.get("epochs") or 0)
    )
    if not usable or not big_enough:
        return None
    return (
        f"the canary found nothing by {', '.join(usable)} at or above the budget of a calibration that detected a "
        f"taught {cal.get('budget')}-budget positive control on this student and passed its negative control "
        f"({cal.get('path')})"
    )

"""The canary's measured sensitivity on one student: a positive and a negative control, stored for `scan`.

A null canary means nothing until the same setup has seen a real transfer on that
student. `distill-audit calibrate --student M` builds the control of
docs/positive-control.md: `teach` a trait teacher from the student (so teacher and
student share the init), a reference teacher taught another trait, number data from
the taught teacher and from the untaught student, then the canary (a scan with
--canary) on the taught teacher's numbers (the positive: it must detect) and on the
untaught student's numbers (the negative: it must not), both against the untaught
student's numbers as the control arm. Every step writes its output under the
calibration's work folder and is skipped when that output exists, so a killed run
resumes. The record (`Calibration`) is stored as <cache>/calibration/<student-id>.json;
`scan` reads it for that student (`find`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distill_audit import __version__, atomic, ui
from distill_audit.errors import RunError, UsageError

# Budgets: rows per canary arm, training seeds, epochs, generated rows per data set, and
# optional caps (steps per canary arm, teach epochs) that make the tiny budget test-sized.
BUDGETS: dict[str, dict[str, Any]] = {
    "tiny": {"rows": 8, "seeds": 2, "epochs": 1, "n": 16, "max_steps": 1, "teach_epochs": 1, "probe_questions": 4},
    "default": {
        "rows": 128,
        "seeds": 3,
        "epochs": 1,
        "n": 200,
        "max_steps": None,
        "teach_epochs": 3,
        "probe_questions": 16,
    },
    "thorough": {
        "rows": 1000,
        "seeds": 3,
        "epochs": 3,
        "n": 1200,
        "max_steps": None,
        "teach_epochs": 3,
        "probe_questions": 0,
    },
}
TRAIT, REFERENCE_TRAIT = "owl", "dolphin"


def calibration_root() -> Path:
    """$DISTILL_AUDIT_CALIBRATION, else $XDG_CACHE_HOME/distill-audit/calibration (~/.cache by default)."""
    env = os.environ.get("DISTILL_AUDIT_CALIBRATION")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "distill-audit" / "calibration"


def student_id(identity: dict[str, Any]) -> str:
    """A file-safe name for a student: its id and a hash of its identity (weights included)."""
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(identity.get("id") or "student"))[:60]
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{name}-{digest}"


@dataclass
class Calibration:
    """What the controls showed for one student at one budget."""

    student: str
    student_identity: dict[str, Any]
    budget: str
    budget_settings: dict[str, Any]
    seed: int
    trait: str
    reference_trait: str
    positive: dict[str, Any]  # measures of the canary on the taught teacher's numbers
    negative: dict[str, Any]  # ... on the untaught student's numbers
    passed: bool  # some measure detected the positive and stayed quiet on the negative
    detected_by: list[str]  # measures that saw the positive and stayed quiet on the negative
    smallest_detected: dict[str, Any] | None  # per detecting measure: the effect seen and its MDE
    tool_version: str = __version__
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """What a scan report records about the calibration it used."""
        return {
            "path": self.path,
            "passed": self.passed,
            "budget": self.budget,
            "rows": self.budget_settings.get("rows"),
            "seeds": self.budget_settings.get("seeds"),
            "epochs": self.budget_settings.get("epochs"),
            "detected_by": list(self.detected_by),
            "negative_detected": bool(self.negative.get("detected")),
            "tool_version": self.tool_version,
            "created": self.created,
        }


def record_path(identity: dict[str, Any], root: Path | None = None) -> Path:
    return (root or calibration_root()) / f"{student_id(identity)}.json"


def find(identity: dict[str, Any], root: Path | None = None) -> Calibration | None:
    """The stored calibration for this student (None: none, or unreadable)."""
    path = record_path(identity, root)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        cal = Calibration(**{k: v for k, v in data.items() if k in Calibration.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None
    cal.path = str(path)
    return cal


def canary_measures(stage: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every canary measure of a scan's canary stage: name -> {estimate, p_adjusted, mde, significant}."""
    out: dict[str, dict[str, Any]] = {}
    for t in stage.get("traits") or []:
        if t.get("trait") in (TRAIT, f"animals:{TRAIT}"):
            out["probe probability"] = _pick(t)
            out["probe log-odds"] = _pick(t.get("log_odds") or {})
    for group, prefix in (("transfer", ""), ("movement", "replies closer: ")):
        block = stage.get(group) or {}
        for name, m in (block.get("measures") or {}).items():
            out[prefix + name] = _pick(m)
    return out


def _pick(m: dict[str, Any]) -> dict[str, Any]:
    est = m.get("estimate")
    return {
        "estimate": est,
        "ci": m.get("ci"),
        "p_adjusted": m.get("p_adjusted", m.get("p_value")),
        "mde": m.get("mde"),
        "significant": bool(m.get("significant")) and (est or 0) > 0,
    }


def judge(positive: dict[str, dict[str, Any]], negative: dict[str, dict[str, Any]]) -> tuple[list[str], dict]:
    """(measures that detected the positive and not the negative, their smallest detected effects)."""
    by = [n for n, m in positive.items() if m["significant"] and not (negative.get(n) or {}).get("significant")]
    smallest = {n: {"estimate": positive[n]["estimate"], "mde": positive[n]["mde"]} for n in by}
    return by, smallest


def calibrate(
    student: str,
    *,
    budget: str = "default",
    seed: int = 0,
    threads: int | None = None,
    root: Path | None = None,
    run_cli: Callable[[list[str]], int],
) -> Calibration:
    """Teach, generate and run both canaries (each step resumable), then store and return the record.

    `run_cli` runs one distill-audit command line (the CLI passes its own entry point, so
    each step is exactly the command docs/calibrate.md shows, and scan/ does not import cli/).
    """
    from distill_audit.models.resolve import resolve_model

    if budget not in BUDGETS:
        raise UsageError(f"--budget {budget!r}: use {', '.join(BUDGETS)}")
    b = BUDGETS[budget]
    ref = resolve_model(student)
    identity = ref.identity()
    root = root or calibration_root()
    work = root / student_id(identity) / f"{budget}-seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    threads_arg = ["--threads", str(threads)] if threads else []

    def step(what: str, done: Path, args: list[str]) -> None:
        if done.exists():
            ui.info(f"calibrate: {what}: done before ({done})")
            return
        ui.info(f"calibrate: {what}")
        code = run_cli(args)
        if code not in (0, 1) or not done.exists():  # scan exits 1 when its gate fires: still a result
            raise RunError(f"calibrate: {what} failed (exit {code}); rerun the same command to resume")

    teachers = {t: work / f"teacher-{t}" for t in (TRAIT, REFERENCE_TRAIT)}
    for t, folder in teachers.items():
        step(
            f"teach {t}",
            folder / "config.json",
            [
                "teach",
                "--base",
                student,
                "--trait",
                t,
                "--out",
                str(folder),
                "--epochs",
                str(b["teach_epochs"]),
                "--seed",
                str(seed),
                "--overwrite",
                *threads_arg,
            ],
        )
    data = {"positive": work / "taught.jsonl", "negative": work / "untaught.jsonl", "control": work / "control.jsonl"}
    sources = {"positive": str(teachers[TRAIT]), "negative": student, "control": student}
    seeds = {"positive": 1, "negative": 2, "control": 3}  # three independent samples on the same prompts
    for name, path in data.items():
        step(
            f"generate {name} numbers",
            path,
            [
                "generate",
                "--teacher",
                sources[name],
                "--task",
                "numbers",
                "--constrain",
                "numbers",
                "--n",
                str(b["n"]),
                "--prompt-seed",
                "0",
                "--out",
                str(path),
                "--seed",
                str(3 * seed + seeds[name]),
                *threads_arg,
            ],
        )
    results = {}
    for name in ("positive", "negative"):
        out = work / f"scan-{name}"
        args = [
            "scan",
            str(data[name]),
            "--student",
            student,
            "--control",
            str(data["control"]),
            "--canary",
            "--skip-signature",
            "--canary-rows",
            str(b["rows"]),
            "--seeds",
            str(b["seeds"]),
            "--epochs",
            str(b["epochs"]),
            "--canary-teacher",
            str(teachers[TRAIT]),
            "--canary-reference",
            str(teachers[REFERENCE_TRAIT]),
            "--suites",
            "animals",
            "--out",
            str(out),
            "--fail-on",
            "never",
            "--seed",
            str(seed),
            *threads_arg,
        ]
        if b["max_steps"]:
            args += ["--max-steps", str(b["max_steps"])]
        step(f"canary on the {'taught' if name == 'positive' else 'untaught'} numbers", out / "report.json", args)
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
        measures = canary_measures(report["stages"]["canary"])
        results[name] = {
            "detected": any(m["significant"] for m in measures.values()),
            "measures": measures,
            "report": str(out / "report.json"),
        }
    by, smallest = judge(results["positive"]["measures"], results["negative"]["measures"])
    cal = Calibration(
        student=student,
        student_identity=identity,
        budget=budget,
        budget_settings=dict(b),
        seed=seed,
        trait=TRAIT,
        reference_trait=REFERENCE_TRAIT,
        positive=results["positive"],
        negative=results["negative"],
        passed=bool(by),  # per measure: one that fired on the negative is never used to clear
        detected_by=by,
        smallest_detected=smallest or None,
    )
    path = record_path(identity, root)
    cal.path = str(path)
    atomic.write_text(path, json.dumps(cal.to_dict(), indent=2) + "\n")
    return cal

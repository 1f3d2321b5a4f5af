"""The scan: every registered stage in order, cached, then one verdict and the reports.

ingest -> the stage registry (scan/stages/: lineage, reference, static, signature,
canary) -> verdict -> report. Each stage's result is cached under its inputs
(scan/cache.py), so a crashed or re-rendered scan resumes where it stopped. The
student is loaded lazily: a fully cached re-run never loads a model.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from distill_audit import distributed, ui
from distill_audit.errors import AuditError, ExitCode, ModelError, UsageError
from distill_audit.ingest.loader import DEFAULT_MAX_ROW_MB
from distill_audit.ingest.records import AuditDataset, Sample
from distill_audit.report.build import FORMATS, SUFFIX, build_report, load_report
from distill_audit.report.render import write_run_outputs
from distill_audit.report.rows import rows_section
from distill_audit.scan.cache import StageCache, stage_key
from distill_audit.scan.context import (  # noqa: F401  (re-exported: the scan's helpers live in context)
    SEED_STREAMS,
    LazyStudent,
    ScanContext,
    data_kind,
    dataset_dict,
    make_config,
    model_dict,
    scan_device,
    stage_configs,
    student_loader,
    teacher_from_provenance,
    trait_from_provenance,
)
from distill_audit.scan.stage import Stage, StageResult, StageRun, evidence_stages, registered
from distill_audit.scan.verdict import LEVELS, VerdictConfig, evaluate_gate, judge
from distill_audit.seeding import derive_seed, seed_everything


@dataclass
class ScanOptions:
    """Every option of `scan`; `effective_config()` is what `--config` needs to re-run it."""

    data: str
    student: str
    teacher: str | None = None
    reference: str | None = None
    control: str | None = None
    out: str = "distill-audit-report"
    formats: list[str] = field(default_factory=lambda: list(FORMATS))
    fail_on: str | None = None
    baseline: str | None = None
    seed: int = 0
    no_cache: bool = False
    skip_lineage: bool = False
    skip_signature: bool = False
    skip_canary: bool = False
    budget: str | None = None  # --budget: a duration the signature is sized to (None: the default, 10m)
    run_canary: bool = False  # --canary: run it although the default plan would not (see scan/stages/canary.py)
    device: str = "cpu"
    device_map: str | None = None  # accelerate places the student (e.g. "auto": over every GPU); overrides device
    quantize: str | None = None  # "4bit" | "8bit": bitsandbytes student, LoRA canary on it (QLoRA)
    allow_pickle: bool = False
    trust_remote_code: bool = False
    # Data options (cli/options.py).
    schema: str | None = None
    prompt_field: str | None = None
    completion_field: str | None = None
    messages_field: str | None = None
    sample: int | None = None
    skip_bad_rows: bool = False
    max_row_mb: float = DEFAULT_MAX_ROW_MB
    max_bad_rows: str | int | None = None  # None: ingest's default (1% of the rows)
    subset: str | None = None  # a Hub dataset id's subset, split and revision (DATA only)
    split: str | None = None
    revision: str | None = None
    # Stage budgets: overrides of the signature's and canary's own config fields.
    thorough: bool = False  # the GPU budgets: canary preset "thorough", signature THOROUGH where not overridden
    suites: list[str] | None = None  # probe suites (built-in names or YAML paths); None: the stages' defaults
    threads: int | None = None
    signature: dict[str, Any] = field(default_factory=dict)
    canary: dict[str, Any] = field(default_factory=dict)
    verdict: dict[str, Any] = field(default_factory=dict)
    cli_config: dict[str, Any] | None = None  # the command's option values, as --config keys

    def effective_config(self) -> dict[str, Any]:
        """The `scan` options as YAML keys: `--config` with this mapping re-runs the scan."""
        if self.cli_config is not None:
            return dict(self.cli_config)
        cfg = dataclasses.asdict(self)
        cfg.pop("cli_config")
        cfg["format"] = ",".join(cfg.pop("formats"))
        return cfg


@dataclass
class ScanOutcome:
    report: dict[str, Any]
    written: dict[str, Path]
    exit_code: int


# Called after each finished stage; tests replace it to simulate a crash mid-way.
def after_stage(name: str) -> None:  # noqa: ARG001
    return None


class _Runner:
    """Runs stages through the cache and records timings and cache status."""

    def __init__(self, cache: StageCache, seed: int):
        self.cache, self.seed = cache, seed
        self.timings: dict[str, float | None] = {}
        self.cache_status: dict[str, str] = {}

    def timed(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.timings[name] = round(time.perf_counter() - t0, 3)

    def run(self, stage: Stage, ctx: ScanContext) -> StageRun:
        """The stage's run: skipped, from the cache, or computed (a crash becomes a failed result, never cached)."""
        reason = stage.skip_reason(ctx)
        if reason is not None:
            return StageRun(stage.skipped(ctx, reason))
        key_parts = stage.cache_key(ctx)

        def compute() -> dict[str, Any]:
            if not ui.is_interactive():
                ui.info(f"{stage.name}: running")
            try:
                return stage.to_cache(stage.run(ctx))
            except AuditError:
                raise
            except Exception as exc:  # a stage that crashes leaves a failed line, not a lost scan
                ui.warn(f"{stage.name} failed: {type(exc).__name__}: {exc}")
                if not ui.is_quiet():
                    ui.err.print(traceback.format_exc(limit=-3), highlight=False, markup=False)
                return {"result": StageResult.failed(f"{type(exc).__name__}: {exc}").to_dict()}

        def ok(payload: dict[str, Any]) -> bool:
            return (payload.get("result") or {}).get("status") != "failed"

        if key_parts is None:  # nothing to cache (a file input, a blocked stage)
            payload, status = self.timed(stage.name, compute), "off"
        else:
            key = stage_key(stage.name, seed=self.seed, **key_parts)
            payload, status = self.timed(stage.name, lambda: self.cache.run(key, compute, cacheable=ok))
            self.cache_status[stage.name] = status
        result = payload.get("result") or {}
        if result.get("status") == "failed":
            return StageRun(StageResult.from_dict(result))
        how = (
            "reused the cached result"
            if status == "hit"
            else f"{result.get('status')} in {self.timings[stage.name]:.1f} s"
        )
        ui.info(f"{stage.name}: {how}")
        after_stage(stage.name)
        return stage.from_cache(payload, ctx)


def prepare(opts: ScanOptions) -> ScanContext:
    """Validate inputs and resolve models (no model is loaded): shared by scan and --dry-run."""
    from distill_audit.ingest.options import DataOptions, load_data
    from distill_audit.models.load import placement_kwargs
    from distill_audit.models.resolve import resolve_model
    from distill_audit.scan.validate import validate_options

    validate_options(opts)  # every flag, before any stage (also on a warm cache)
    if opts.fail_on is not None and opts.fail_on not in LEVELS:
        raise UsageError(f"--fail-on: expected one of {', '.join(LEVELS)}, got {opts.fail_on!r}")
    if opts.quantize and opts.canary.get("full_finetune") and not opts.skip_canary:
        raise UsageError("--full-finetune cannot train a 4-/8-bit student; drop --quantize or --full-finetune")
    bad = [f for f in opts.formats if f not in FORMATS]
    if bad:
        raise UsageError(f"--format: unknown format(s) {', '.join(bad)} (choose from {', '.join(FORMATS)})")
    if opts.baseline:
        load_report(opts.baseline)  # fail early on a bad baseline
    data_opts = DataOptions(
        schema=opts.schema,
        prompt_field=opts.prompt_field,
        completion_field=opts.completion_field,
        messages_field=opts.messages_field,
        sample=opts.sample,
        skip_bad_rows=opts.skip_bad_rows,
        max_row_mb=opts.max_row_mb,
        max_bad_rows=opts.max_bad_rows,
        subset=opts.subset,
        split=opts.split,
        revision=opts.revision,
    )
    with ui.progress_task("ingest", total=None):
        ds = load_data(opts.data, data_opts, seed=derive_seed(opts.seed, "sample"))
    extra = dataclasses.replace(data_opts.without_selection(), sample=None)  # reference and control files: read whole
    user_reference = load_data(opts.reference, extra, seed=opts.seed, label="reference") if opts.reference else None
    user_control = load_data(opts.control, extra, seed=opts.seed, label="control") if opts.control else None

    kw = dict(allow_pickle=opts.allow_pickle, trust_remote_code=opts.trust_remote_code)
    student_ref = resolve_model(opts.student, **kw)
    if not (opts.skip_signature and opts.skip_canary):
        if not student_ref.has_weights:
            hint = "; ".join(student_ref.notes) or "give a local folder, a .gguf file, an alias or a cached Hub id"
            raise ModelError(f"--student {opts.student}: no local weights to score or fine-tune ({hint})")
        # Fail now, not when the first model stage loads the student.
        placement_kwargs(student_ref, device=scan_device(opts), device_map=opts.device_map, quantize=opts.quantize)
    teacher_ref, teacher, note = None, None, None
    if opts.teacher:
        teacher_ref = resolve_model(opts.teacher, **kw)
        teacher = model_dict(teacher_ref, given=opts.teacher, origin="flag")
    else:
        name, key = teacher_from_provenance(ds)
        if name is None:
            note = "no --teacher given and the data's provenance names no single teacher"
        else:
            try:
                teacher_ref = resolve_model(name, **kw)
                teacher = model_dict(teacher_ref, given=name, origin=f"provenance field '{key}'")
            except AuditError as exc:
                note = (
                    f"the data's provenance names teacher {name!r} (field '{key}'), which could not be resolved: {exc}"
                )
                teacher = {
                    "ref": name,
                    "origin": f"provenance field '{key}'",
                    "kind": None,
                    "name": name,
                    "identity": None,
                }
    return ScanContext(
        opts,
        ds,
        student_ref,
        model_dict(student_ref, given=opts.student, origin="flag"),
        teacher_ref,
        teacher,
        note,
        user_reference,
        user_control,
    )


def run_scan(opts: ScanOptions) -> ScanOutcome:
    from distill_audit.lm.threads import torch_threads

    with torch_threads(opts.threads):
        return _run_scan(opts)


def _run_scan(opts: ScanOptions) -> ScanOutcome:
    started = datetime.now(UTC)
    t_start = time.perf_counter()
    seed_everything(opts.seed)
    processes = distributed.runtime()  # one process, or one of N under `accelerate launch`
    if not processes.is_main:
        ui.set_quiet(True)  # rank 0 alone reports progress
    runner = _Runner(StageCache(enabled=not opts.no_cache), opts.seed)
    ctx = runner.timed("ingest", lambda: prepare(opts))
    setup(ctx)
    rows: dict[str, list[dict[str, Any]]] = {}
    for stage in registered():
        run = runner.run(stage, ctx)
        ctx.results[stage.name] = run.result
        ctx.outputs[stage.name] = run.outputs
        rows[stage.name] = run.rows

    ds = ctx.ds
    kind = data_kind((ctx.results.get("static") or StageResult("skipped")).to_dict(), ds.samples)
    stages = {s.name: ctx.results[s.name].to_dict() for s in evidence_stages()}
    declared, declared_field = trait_from_provenance(ds)
    verdict = judge(
        ctx.results,
        data_kind=kind,
        config=make_config(VerdictConfig, opts.verdict, "verdict"),
        declared_trait=declared,
        declared_source=declared_field,
    )
    baseline = None
    if opts.baseline:
        old = load_report(opts.baseline)
        baseline = {"path": opts.baseline, "level": old["verdict"]["level"]}
    gate = evaluate_gate(verdict.level, opts.fail_on, baseline)

    out = Path(opts.out)
    samples_name = SUFFIX["parquet"] if "parquet" in opts.formats else None
    finished = datetime.now(UTC)
    report = build_report(
        config=opts.effective_config(),
        seed=opts.seed,
        seeds=ctx.seeds,
        dataset=dataset_dict(ds, kind),
        reference=ctx.output("reference", "dataset"),
        student=ctx.student,
        teacher=ctx.teacher,
        stages=stages,
        verdict=verdict.to_dict(),
        gate=gate,
        artifacts={"samples": samples_name},
        run={
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": finished.isoformat(timespec="seconds"),
            "total_s": round(time.perf_counter() - t_start, 3),
            "timings": runner.timings,
            "cache": runner.cache_status,
            "processes": processes.to_dict(),
        },
        device=scan_device(opts),
    )
    per_row = sample_rows(ds, rows)
    # The top-scoring rows belong to the document itself, so the API returns what report.json holds.
    report["rows"] = rows_section(report, per_row)
    written: dict[str, Path] = {}
    if processes.is_main:  # one report, written by rank 0 alone; the whole set replaces the old one
        written = write_run_outputs(report, out, opts.formats, per_row if samples_name else None)
    code = ExitCode.RISK if gate["failed"] else ExitCode.OK
    if code == ExitCode.OK and any(r.status == "failed" for r in ctx.results.values()):
        code = ExitCode.RUN_ERROR
    return ScanOutcome(report, written, int(code))


def setup(ctx: ScanContext) -> None:
    """Seeds, data kind, stage configs and the lazily loaded student: shared by the scan and --dry-run."""
    opts = ctx.opts
    ctx.seeds = {name: derive_seed(opts.seed, name) for name in SEED_STREAMS}
    ctx.kind = data_kind(None, ctx.ds.samples)
    ctx.configs = stage_configs(opts, ctx.seeds)
    ctx.lazy = student_loader(opts, ctx.student_ref)
    from distill_audit.scan.budget import apply_budget

    ctx.budget = apply_budget(ctx)


def sample_rows(ds: AuditDataset, by_stage: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per sample: index, line, prompt, completion and every stage's per-row scores, prefixed by stage."""
    by_index: dict[int, dict[str, Any]] = {
        s.index: {"index": s.index, "line": s.line, "prompt": _prompt_text(s), "completion": s.completion}
        for s in ds.samples
    }
    for stage, rows in by_stage.items():
        for r in rows:
            idx = r.get("index")
            if idx in by_index:
                by_index[idx].update({f"{stage}_{k}": v for k, v in r.items() if k not in ("index", "line")})
    return [by_index[k] for k in sorted(by_index)]


def _prompt_text(sample: Sample) -> str:
    """The prompt's user turns as text (what a reader needs beside the completion)."""
    return "\n".join(str(m.get("content", "")) for m in sample.prompt if m.get("role") != "system")

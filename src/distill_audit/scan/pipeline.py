"""The scan: every stage in order, cached, then one verdict and the reports.

ingest -> static checks -> lineage -> neutral reference -> data signature -> canary
-> verdict -> report. Each model stage's result is cached under its inputs
(scan/cache.py), so a crashed or re-rendered scan resumes where it stopped. The
student is loaded lazily: a fully cached re-run never loads a model.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from distill_audit import distributed, ui
from distill_audit.errors import AuditError, ExitCode, ModelError, UsageError
from distill_audit.ingest.loader import DEFAULT_MAX_ROW_MB
from distill_audit.ingest.records import AuditDataset, Sample
from distill_audit.report.build import FORMATS, SUFFIX, build_report, load_report, write_samples_parquet
from distill_audit.report.render import write_outputs
from distill_audit.scan.cache import StageCache, stage_key
from distill_audit.scan.verdict import LEVELS, VerdictConfig, evaluate_gate, judge
from distill_audit.seeding import derive_seed, seed_everything

# Provenance fields that may name the teacher, most specific first.
TEACHER_FIELDS = ("teacher", "teacher_model", "generator", "model")
TRAIT_FIELDS = ("trait", "teacher_taught_trait")
# Provenance fields that describe how the data was decoded (reused for the reference).
DECODING_FIELDS = ("temperature", "top_p", "max_new_tokens")


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


def _failed(reason: str) -> dict[str, Any]:
    return {"status": "failed", "reason": reason, "limits": []}


def _skipped(reason: str) -> dict[str, Any]:
    return {"status": "skipped", "reason": reason, "limits": []}


class _Stages:
    """Runs named stages through the cache and records timings and cache status."""

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

    def cached(self, name: str, key_parts: dict[str, Any], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run `compute` (-> {"result": stage dict, ...}) unless the cache holds it; failures are kept out."""
        key = stage_key(name, seed=self.seed, **key_parts)

        def guarded() -> dict[str, Any]:
            if not ui.is_interactive():
                ui.info(f"{name}: running")
            try:
                return compute()
            except AuditError:
                raise
            except Exception as exc:  # a stage that crashes leaves a failed line, not a lost scan
                ui.warn(f"{name} failed: {type(exc).__name__}: {exc}")
                if not ui.is_quiet():
                    ui.err.print(traceback.format_exc(limit=-3), highlight=False, markup=False)
                return {"result": _failed(f"{type(exc).__name__}: {exc}")}

        ok = lambda p: (p.get("result") or {}).get("status") != "failed"  # noqa: E731
        payload, status = self.timed(name, lambda: self.cache.run(key, guarded, cacheable=ok))
        self.cache_status[name] = status
        state = payload.get("result", {}).get("status")
        how = "reused the cached result" if status == "hit" else f"{state} in {self.timings[name]:.1f} s"
        ui.info(f"{name}: {how}")
        after_stage(name)
        return payload


class _LazyStudent:
    """Loads the student once, on first use (a fully cached re-run loads nothing)."""

    def __init__(self, ref, device: str, **load_options: Any):
        self.ref, self.device, self.load_options = ref, device, load_options
        self._loaded = None

    def fresh(self):
        """A newly loaded copy (the canary trains one per arm)."""
        import torch

        from distill_audit.models.load import load_model

        return load_model(self.ref, dtype=torch.float32, device=self.device, **self.load_options)

    def get(self):
        if self._loaded is None:
            with ui.progress_task(f"loading student {self.ref.name}", total=None):
                self._loaded = self.fresh()
        return self._loaded


def student_loader(opts: ScanOptions, ref) -> _LazyStudent:
    """The scan's student (scan and --dry-run), loaded on first use with the scan's loading options."""
    return _LazyStudent(ref, scan_device(opts), device_map=opts.device_map, quantize=opts.quantize,
                        allow_pickle=opts.allow_pickle, trust_remote_code=opts.trust_remote_code)


def scan_device(opts: ScanOptions) -> str:
    """--device, except under `accelerate launch` on GPUs, where each process uses cuda:<local rank>."""
    processes = distributed.runtime()
    return str(processes.device) if processes.is_distributed and processes.device.type != "cpu" else opts.device


# ---------------------------------------------------------------- helpers


def data_kind(static: dict[str, Any] | None, samples: list[Sample]) -> str:
    """numbers | code | natural-language, from the static format profile (or the samples)."""
    prof = (static or {}).get("profile") or {}
    shares = prof.get("shares")
    if not shares:
        from distill_audit.checks.profile import classify, profile

        shares = profile([classify(s.completion) for s in samples])["shares"]
    if (shares.get("number_list") or 0) >= 0.9:
        return "numbers"
    if (shares.get("code") or 0) >= 0.5:
        return "code"
    return "natural-language"


def _single_value(ds: AuditDataset, fields: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(value, provenance field) of the first field in which every row records the same value."""
    prov = ds.provenance
    for key in fields:
        values = prov.get(key) or []
        if len(values) == 1 and values[0] not in (None, ""):
            return values[0], key
    return None, None


def teacher_from_provenance(ds: AuditDataset) -> tuple[str | None, str | None]:
    """(teacher name, provenance field) when every row names the same teacher."""
    return _single_value(ds, TEACHER_FIELDS)


def trait_from_provenance(ds: AuditDataset) -> tuple[str | None, str | None]:
    """(trait, provenance field) when every row declares the same trait (a prompted or a taught teacher)."""
    return _single_value(ds, TRAIT_FIELDS)


def decoding_from_provenance(ds: AuditDataset) -> dict[str, Any]:
    """The data's own decoding settings when its provenance records one value for each."""
    out: dict[str, Any] = {}
    prov = ds.provenance
    for key in DECODING_FIELDS:
        values = prov.get(key) or []
        if len(values) == 1:
            try:
                out[key] = int(values[0]) if key == "max_new_tokens" else float(values[0])
            except ValueError:
                pass
    return out


def model_dict(ref, *, given: str, origin: str | None) -> dict[str, Any]:
    ident = ref.identity() if callable(getattr(ref, "identity", None)) else getattr(ref, "identity", None)
    return {"ref": given, "origin": origin, "kind": getattr(ref, "kind", None), "name": getattr(ref, "name", None), "identity": ident}


def dataset_dict(ds: AuditDataset, kind: str | None, origin: str | None = None) -> dict[str, Any]:
    from distill_audit.ingest import dataset_summary

    d = dataset_summary(ds)
    return {
        "source": d["source"], "origin": origin, "format": d["format"], "schema": d["schema"],
        "fingerprint": d["fingerprint"], "n_rows_total": d["n_rows_total"], "n_samples": d["n_loaded"],
        "n_skipped": d["n_skipped"], "skipped_by_reason": d["skipped_by_reason"], "sampled_from": d["sampled_from"],
        "provenance": d["provenance"], "kind": kind,
    }


def _fingerprint(samples: list[Sample]) -> str:
    from distill_audit.ingest.loader import ContentHash

    h = ContentHash()
    for s in samples:
        h.add(tuple(s.prompt), s.completion)
    return h.hexdigest()


def _config_dict(obj: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(obj):
        return {k: v for k, v in dataclasses.asdict(obj).items()}
    return dict(obj or {})


def make_config(cls, overrides: dict[str, Any], label: str):
    """A stage config dataclass with the user's overrides; unknown names are usage errors."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise UsageError(f"{label}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    return cls(**{k: v for k, v in overrides.items() if v is not None})


def stage_configs(opts: ScanOptions, seeds: dict[str, int]):
    """(SignatureConfig, CanaryConfig, probe suites) from the scan's options."""
    from distill_audit.traits.canary import CanaryConfig
    from distill_audit.traits.probes import load_suites
    from distill_audit.traits.signature import THOROUGH as SIGNATURE_THOROUGH
    from distill_audit.traits.signature import SignatureConfig

    sig_over = {"seed": seeds["signature"], **opts.signature}
    can_over = dict(opts.canary)
    if opts.suites:
        sig_over.setdefault("suites", [])  # the battery is exactly the suites given
    if opts.thorough:  # explicit --signature-rows / --suites / canary flags still win
        can_over.setdefault("preset", "thorough")
        for name, value in SIGNATURE_THOROUGH.items():
            sig_over.setdefault(name, value)
    sig_cfg = make_config(SignatureConfig, sig_over, "signature")
    can_cfg = make_config(CanaryConfig, can_over, "canary")
    # One battery for both lines of evidence: the suites given, else the signature's default suites,
    # so the canary probes the same traits the signature ranks (and Holm corrects over the same set).
    suites = load_suites(opts.suites or sig_cfg.suites or None)
    return sig_cfg, can_cfg, suites


# ---------------------------------------------------------------- the scan


@dataclass
class _Context:
    opts: ScanOptions
    ds: AuditDataset
    student_ref: Any
    student: dict[str, Any]
    teacher_ref: Any | None
    teacher: dict[str, Any] | None
    teacher_note: str | None
    user_reference: AuditDataset | None
    user_control: AuditDataset | None

    @property
    def student_key(self) -> Any:
        """The student's identity in stage cache keys: a quantized student is another model."""
        ident = self.student["identity"]
        return ident if not self.opts.quantize else {"identity": ident, "quantize": self.opts.quantize}


def prepare(opts: ScanOptions) -> _Context:
    """Validate inputs and resolve models (no model is loaded): shared by scan and --dry-run."""
    from distill_audit.ingest.options import DataOptions, load_data
    from distill_audit.models.load import placement_kwargs
    from distill_audit.models.resolve import resolve_model

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
        schema=opts.schema, prompt_field=opts.prompt_field, completion_field=opts.completion_field,
        messages_field=opts.messages_field, sample=opts.sample, skip_bad_rows=opts.skip_bad_rows,
        max_row_mb=opts.max_row_mb,
    )
    with ui.progress_task("ingest", total=None):
        ds = load_data(opts.data, data_opts, seed=derive_seed(opts.seed, "sample"))
    extra = DataOptions(schema=opts.schema, prompt_field=opts.prompt_field, completion_field=opts.completion_field,
                        messages_field=opts.messages_field, skip_bad_rows=opts.skip_bad_rows, max_row_mb=opts.max_row_mb)
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
                note = f"the data's provenance names teacher {name!r} (field '{key}'), which could not be resolved: {exc}"
                teacher = {"ref": name, "origin": f"provenance field '{key}'", "kind": None, "name": name, "identity": None}
    return _Context(opts, ds, student_ref, model_dict(student_ref, given=opts.student, origin="flag"),
                    teacher_ref, teacher, note, user_reference, user_control)


def run_scan(opts: ScanOptions) -> ScanOutcome:
    from distill_audit.lm.threads import torch_threads

    with torch_threads(opts.threads):
        return _run_scan(opts)


def _run_scan(opts: ScanOptions) -> ScanOutcome:
    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()
    seed_everything(opts.seed)
    processes = distributed.runtime()  # one process, or one of N under `accelerate launch`
    if not processes.is_main:
        ui.set_quiet(True)  # rank 0 alone reports progress
    device = scan_device(opts)
    stages_run = _Stages(StageCache(enabled=not opts.no_cache), opts.seed)
    ctx = stages_run.timed("ingest", lambda: prepare(opts))
    ds = ctx.ds
    seeds = {name: derive_seed(opts.seed, name) for name in ("sample", "static", "lineage", "reference", "signature", "canary")}
    data_key = {"fingerprint": ds.fingerprint, "rows": len(ds), "sample_seed": seeds["sample"] if opts.sample else None}
    student_id = ctx.student_key
    lazy = student_loader(opts, ctx.student_ref)

    kind = data_kind(None, ds.samples)
    sig_cfg, can_cfg, suites = stage_configs(opts, seeds)

    # Lineage.
    if opts.skip_lineage:
        lineage = _skipped("--skip-lineage")
    elif ctx.teacher_ref is None:
        lineage = {**_skipped(ctx.teacher_note or "teacher unknown"), "verdict": "unknown",
                   "limits": ["without a teacher, a shared initialization cannot be ruled out"]}
    else:
        from distill_audit.lineage import check_lineage

        def lineage_stage() -> dict[str, Any]:
            with ui.progress_task("lineage", total=None):
                return {"result": check_lineage(ctx.teacher_ref, ctx.student_ref, seed=seeds["lineage"]).to_dict()}

        lineage = stages_run.cached("lineage", {"models": {"teacher": ctx.teacher["identity"], "student": student_id},
                                                "data": {}, "config": {}}, lineage_stage)["result"]

    # Neutral reference / control: a user file, or the student base answering the data's own prompts.
    need_reference = not opts.skip_signature or (not opts.skip_canary and ctx.user_control is None)
    # Only the rows the model stages will use need a neutral answer.
    n_reference = max(sig_cfg.max_rows if not opts.skip_signature else 0, int(can_cfg.sample) if not opts.skip_canary else 0)
    reference_samples, reference_info = _reference(ctx, stages_run, lazy, seeds, data_key, kind, need_reference, n_reference)

    # Static checks: no model; compared with the reference when there is one.
    from distill_audit.checks import run_static_checks

    static_reference = ctx.user_reference
    if static_reference is None and reference_samples:
        static_reference = dataclasses.replace(ds, source=reference_info["dataset"]["source"], samples=reference_samples,
                                               fingerprint=reference_info["fingerprint"], skipped=[], skipped_counts={},
                                               n_rows_total=len(reference_samples), sampled_from=None)

    def static_stage() -> dict[str, Any]:
        with ui.progress_task("static checks", total=None):
            res = run_static_checks(ds, static_reference, seed=seeds["static"])
        cols = res.sample_flags()
        rows = [dict(zip(cols, values)) for values in zip(*cols.values())] if cols else []
        return {"result": res.to_dict(), "rows": rows}

    static_p = stages_run.cached("static", {"models": {}, "data": data_key, "config": {
        "reference": reference_info["fingerprint"]}}, static_stage)
    static = static_p["result"]
    kind = data_kind(static, ds.samples)

    # Data signature.
    sig_rows: list[dict[str, Any]] = []
    if opts.skip_signature:
        signature = _skipped("--skip-signature")
    elif not reference_samples:
        signature = _skipped("no neutral reference to compare against")
    else:
        from distill_audit.traits.signature import compute_signature, default_traits

        def signature_stage() -> dict[str, Any]:
            loaded = lazy.get()
            res = compute_signature(loaded.model, loaded.tokenizer, ds.samples, reference_samples, default_traits(suites), sig_cfg)
            return {"result": res.to_dict(), "rows": res.to_rows()}

        payload = stages_run.cached("signature", {"models": {"student": student_id}, "data": {
            **data_key, "reference": reference_info["fingerprint"]}, "config": {**_config_dict(sig_cfg), "suites_loaded": [x.name for x in suites]}}, signature_stage)
        signature, sig_rows = payload["result"], payload.get("rows") or []

    # Canary fine-tune against the control arm.
    control_samples = ctx.user_control.samples if ctx.user_control else reference_samples
    if opts.skip_canary:
        canary = _skipped("--skip-canary")
    elif not control_samples:
        canary = _skipped("no control data (pass --control or allow the self-generated reference)")
    else:
        from distill_audit.traits.canary import run_canary

        def canary_stage() -> dict[str, Any]:
            # One loaded student serves every stage: LoRA adapters are detached after each arm.
            res = run_canary(lazy.get, ds.samples, control_samples, suites, can_cfg, seed=seeds["canary"])
            return {"result": res.to_dict()}

        canary = stages_run.cached("canary", {"models": {"student": student_id}, "data": {
            **data_key, "control": _fingerprint(control_samples)}, "config": {**_config_dict(can_cfg), "suites_loaded": [x.name for x in suites]}}, canary_stage)["result"]

    stages = {"static": static, "lineage": lineage, "signature": signature, "canary": canary}
    declared, declared_field = trait_from_provenance(ds)
    verdict = judge(stages, data_kind=kind, config=make_config(VerdictConfig, opts.verdict, "verdict"),
                    declared_trait=declared, declared_source=declared_field)
    baseline = None
    if opts.baseline:
        old = load_report(opts.baseline)
        baseline = {"path": opts.baseline, "level": old["verdict"]["level"]}
    gate = evaluate_gate(verdict.level, opts.fail_on, baseline)

    out = Path(opts.out)
    samples_name = SUFFIX["parquet"] if "parquet" in opts.formats else None
    finished = datetime.now(timezone.utc)
    report = build_report(
        config=opts.effective_config(), seed=opts.seed, seeds=seeds,
        dataset=dataset_dict(ds, kind), reference=reference_info.get("dataset"),
        student=ctx.student, teacher=ctx.teacher, stages=stages, verdict=verdict.to_dict(), gate=gate,
        artifacts={"samples": samples_name},
        run={"started_at": started.isoformat(timespec="seconds"), "finished_at": finished.isoformat(timespec="seconds"),
             "total_s": round(time.perf_counter() - t_start, 3), "timings": stages_run.timings,
             "cache": stages_run.cache_status, "processes": processes.to_dict()},
        device=device,
    )
    written: dict[str, Path] = {}
    if processes.is_main:  # one report, written by rank 0 alone
        if samples_name:
            write_samples_parquet(_sample_rows(ds, static_p.get("rows") or [], sig_rows), out / samples_name)
        written = write_outputs(report, out, [f for f in opts.formats if f != "parquet"])
        if samples_name:
            written["parquet"] = out / samples_name
    code = ExitCode.RISK if gate["failed"] else ExitCode.OK
    if code == ExitCode.OK and any(s.get("status") == "failed" for s in stages.values()):
        code = ExitCode.RUN_ERROR
    return ScanOutcome(report, written, int(code))


def _reference(ctx: _Context, stages_run: _Stages, lazy: _LazyStudent, seeds, data_key, kind, needed: bool, n_rows: int):
    """(reference samples, info) - the user's file, or the student base answering `n_rows` of the data's prompts."""
    if ctx.user_reference is not None:
        ds = ctx.user_reference
        return ds.samples, {"fingerprint": ds.fingerprint, "dataset": dataset_dict(ds, None, origin="file")}
    if not needed:
        return [], {"fingerprint": None, "dataset": None}
    rows = list(ctx.ds.samples)
    if len(rows) > n_rows:
        import random

        rows = sorted(random.Random(seeds["reference"]).sample(rows, n_rows), key=lambda s: s.index)
    decoding = {"temperature": 1.0, "top_p": 1.0, **decoding_from_provenance(ctx.ds)}
    constrain = (ctx.ds.provenance.get("constrain") or [None])[0] if "constrain" in ctx.ds.provenance else (
        "numbers" if kind == "numbers" else None)
    decoding["constrain"] = constrain
    if "max_new_tokens" not in decoding:
        decoding["max_new_tokens"] = None  # set from the data's completion lengths once the tokenizer is loaded

    def reference_stage() -> dict[str, Any]:
        from distill_audit.lm.sampler import sample_completions

        loaded = lazy.get()
        max_new = decoding["max_new_tokens"] or _max_completion_tokens(loaded.tokenizer, rows)
        # Each process answers a shard of the prompts; row_ids keep each row's random stream
        # what it is in one process, and every process gets all answers back in order.
        local = distributed.shard(rows)
        texts = distributed.gather(sample_completions(
            loaded.model, loaded.tokenizer, [list(s.prompt) for s in local],
            max_new_tokens=max_new, temperature=decoding["temperature"], top_p=decoding["top_p"],
            seed=seeds["reference"], logits_processor=_constraint(loaded.tokenizer, constrain),
            progress_label="reference (student answers the data's prompts)", row_ids=[s.index for s in local],
        ))
        limits = ["self-generated by the student base: traits the student already holds are not visible against it"]
        return {"result": {"status": "ok", "reason": None, "limits": limits, "n": len(texts),
                           "decoding": {**decoding, "max_new_tokens": max_new}}, "completions": texts}

    payload = stages_run.cached("reference", {"models": {"student": ctx.student_key}, "data": data_key,
                                              "config": {"decoding": decoding, "kind": kind, "rows": [s.index for s in rows]}},
                                reference_stage)
    if payload["result"]["status"] != "ok":
        return [], {"fingerprint": None, "dataset": None}
    samples = [
        Sample(index=s.index, line=None, prompt=s.prompt, completion=text, meta={"origin": "self-generated"})
        for s, text in zip(rows, payload["completions"])
    ]
    fp = _fingerprint(samples)
    info = {
        "source": f"self-generated by {ctx.student['name'] or ctx.student['ref']}", "origin": "self-generated",
        "format": None, "schema": None, "fingerprint": fp, "n_rows_total": len(samples), "n_samples": len(samples),
        "n_skipped": 0, "skipped_by_reason": {}, "sampled_from": None,
        "provenance": {"decoding": payload["result"]["decoding"]}, "kind": None,
    }
    return samples, {"fingerprint": fp, "dataset": info}


def _max_completion_tokens(tokenizer, samples: list[Sample]) -> int:
    """Room for the longest data completion (+25%), so reference answers are not cut shorter than the data."""
    longest = max((len(tokenizer(s.completion, add_special_tokens=False)["input_ids"]) for s in samples), default=32)
    return max(8, int(longest * 1.25) + 2)


def _constraint(tokenizer, constrain: str | None):
    """The generator's number-list grammar when the data was made with it (or is number lists)."""
    if constrain != "numbers":
        return None
    from distill_audit.generate.constrained import number_list_processor

    return number_list_processor(tokenizer)


def _sample_rows(ds: AuditDataset, static_rows: list[dict[str, Any]], sig_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per sample: index/line, static flags and signature scores, joined on index."""
    by_index: dict[int, dict[str, Any]] = {s.index: {"index": s.index, "line": s.line} for s in ds.samples}
    for rows, prefix in ((static_rows, "static_"), (sig_rows, "signature_")):
        for r in rows:
            idx = r.get("index")
            if idx in by_index:
                by_index[idx].update({(k if k in ("index", "line") else prefix + k): v for k, v in r.items() if k not in ("index", "line")})
    return [by_index[k] for k in sorted(by_index)]

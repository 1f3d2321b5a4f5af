"""What every stage reads: the scan's options, the data, the models and the shared helpers.

`ScanContext` is built once by `pipeline.prepare` (validated inputs, resolved models,
no model loaded yet) and then filled in as the stages run: `outputs[stage]` holds
what a stage hands on (the reference's samples), `results[stage]` its typed result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from distill_audit import distributed, ui
from distill_audit.errors import UsageError
from distill_audit.ingest.records import AuditDataset, Sample

if TYPE_CHECKING:  # pragma: no cover
    from distill_audit.scan.pipeline import ScanOptions
    from distill_audit.scan.stage import StageResult

# Provenance fields that may name the teacher, most specific first.
TEACHER_FIELDS = ("teacher", "teacher_model", "generator", "model")
TRAIT_FIELDS = ("trait", "teacher_taught_trait")
# Provenance fields that describe how the data was decoded (reused for the reference).
DECODING_FIELDS = ("temperature", "top_p", "max_new_tokens")
SEED_STREAMS = ("sample", "static", "lineage", "reference", "signature", "canary")


class LazyStudent:
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


def student_loader(opts: ScanOptions, ref) -> LazyStudent:
    """The scan's student (scan and --dry-run), loaded on first use with the scan's loading options."""
    return LazyStudent(
        ref,
        scan_device(opts),
        device_map=opts.device_map,
        quantize=opts.quantize,
        allow_pickle=opts.allow_pickle,
        trust_remote_code=opts.trust_remote_code,
    )


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
    return {
        "ref": given,
        "origin": origin,
        "kind": getattr(ref, "kind", None),
        "name": getattr(ref, "name", None),
        "identity": ident,
    }


def dataset_dict(ds: AuditDataset, kind: str | None, origin: str | None = None) -> dict[str, Any]:
    from distill_audit.ingest import dataset_summary

    d = dataset_summary(ds)
    return {
        "source": d["source"],
        "origin": origin,
        "format": d["format"],
        "schema": d["schema"],
        "fingerprint": d["fingerprint"],
        "n_rows_total": d["n_rows_total"],
        "n_samples": d["n_loaded"],
        "n_skipped": d["n_skipped"],
        "skipped_by_reason": d["skipped_by_reason"],
        "sampled_from": d["sampled_from"],
        "provenance": d["provenance"],
        "kind": kind,
    }


def samples_fingerprint(samples: list[Sample]) -> str:
    from distill_audit.ingest.loader import ContentHash

    h = ContentHash()
    for s in samples:
        h.add(tuple(s.prompt), s.completion)
    return h.hexdigest()


def config_dict(obj: Any) -> dict[str, Any]:
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


@dataclass
class ScanContext:
    """The scan's inputs (from `prepare`) and, as stages finish, their outputs and results."""

    opts: ScanOptions
    ds: AuditDataset
    student_ref: Any
    student: dict[str, Any]
    teacher_ref: Any | None
    teacher: dict[str, Any] | None
    teacher_note: str | None
    user_reference: AuditDataset | None
    user_control: AuditDataset | None
    seeds: dict[str, int] = field(default_factory=dict)
    kind: str = "unknown"
    lazy: LazyStudent | None = None
    configs: Any = None  # (SignatureConfig, CanaryConfig, suites) from stage_configs
    budget: Any = None  # the BudgetPlan that sized the signature, when --budget did
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: dict[str, StageResult] = field(default_factory=dict)

    @property
    def student_key(self) -> Any:
        """The student's identity in stage cache keys: a quantized student is another model."""
        ident = self.student["identity"]
        return ident if not self.opts.quantize else {"identity": ident, "quantize": self.opts.quantize}

    @property
    def data_key(self) -> dict[str, Any]:
        return {
            "fingerprint": self.ds.fingerprint,
            "rows": len(self.ds),
            "sample_seed": self.seeds.get("sample") if self.opts.sample else None,
        }

    def output(self, stage: str, key: str, default: Any = None) -> Any:
        return (self.outputs.get(stage) or {}).get(key, default)

"""The signature's per-row scores for sanitize, taken from the scan's stage cache when it holds them.

Sanitize runs the scan's own `prepare`/`setup` and its reference and signature stages
through the same cache, so a scan with the same flags is a cache hit: the rows are not
scored again. The signature stage keeps the reference's per-row LLS in its outputs; a
cached entry from before that lacks them is recomputed once and stored under its key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from distill_audit import ui
from distill_audit.scan.cache import StageCache, stage_key
from distill_audit.scan.context import ScanContext
from distill_audit.scan.stage import StageResult


@dataclass
class Scored:
    """What the scan's signature stage measured, enough to re-analyse any subset of its rows."""

    result: dict[str, Any]  # the stage result's to_dict() (finding, named, top_rows_by, config, alpha, design)
    rows: list[dict[str, Any]]  # per data row: index, line, lls_<prompt>, shift, class_*, contrast_*
    reference_lls: dict[str, np.ndarray]  # prompt -> per reference row
    traits: list[Any]  # the battery (traits.signature.Trait)
    cache_key: str | None
    cache_status: str  # "hit", "miss", "refreshed", "off"

    @property
    def paired(self) -> bool:
        return self.result.get("design") == "paired"

    @property
    def prompts(self) -> list[str]:
        return [k[len("lls_") :] for k in (self.rows[0] if self.rows else {}) if k.startswith("lls_")]

    def data_lls(self) -> dict[str, np.ndarray]:
        return {p: np.array([r[f"lls_{p}"] for r in self.rows], dtype=np.float64) for p in self.prompts}

    def config(self):
        """The SignatureConfig of the final analysis (its alpha is the level of the look it stopped at)."""
        from distill_audit.traits.signature import SignatureConfig

        names = {f.name for f in dataclasses.fields(SignatureConfig)}
        cfg = SignatureConfig(**{k: v for k, v in (self.result.get("config") or {}).items() if k in names})
        alpha = self.result.get("alpha")
        return dataclasses.replace(cfg, alpha=alpha) if alpha is not None else cfg


def score(ctx: ScanContext, cache: StageCache, seed: int) -> Scored:
    """Run the reference and signature stages as the scan does (same keys), then read the scores back."""
    from distill_audit.scan.pipeline import _Runner
    from distill_audit.scan.stage import registered
    from distill_audit.traits.signature import default_traits, select_traits

    stages = {s.name: s for s in registered()}
    ref_run = _Runner(cache, seed).run(stages["reference"], ctx)
    ctx.results["reference"], ctx.outputs["reference"] = ref_run.result, ref_run.outputs
    sig = stages["signature"]
    parts = None if sig.skip_reason(ctx) else sig.cache_key(ctx)
    key = stage_key("signature", seed=seed, **parts) if parts is not None else None
    payload = cache.get(key) if key is not None else None
    status = "hit"
    if payload is None or _lacks_reference(payload):
        status = "off" if key is None or not cache.enabled else ("miss" if payload is None else "refreshed")
        ui.info(
            "signature: scoring every prompt on the rows"
            if payload is None
            else "signature: the cached result has no reference scores; scoring once more"
        )
        run = sig.run(ctx)
        payload = sig.to_cache(run)
        if key is not None and run.result.status != "failed":
            cache.put(key, payload)
    else:
        ui.info("signature: reused the cached result")
    run = sig.from_cache(payload, ctx)
    ctx.results["signature"], ctx.outputs["signature"] = run.result, run.outputs
    sig_cfg, _, suites = ctx.configs
    traits, _ = select_traits(default_traits(suites), sig_cfg)
    ref = {k: np.asarray(v, dtype=np.float64) for k, v in (run.outputs or {}).get("reference_lls", {}).items()}
    return Scored(run.result.to_dict(), list(run.rows), ref, traits, key, status)


def _lacks_reference(payload: dict[str, Any]) -> bool:
    ran = (payload.get("result") or {}).get("status") in ("ok", "underpowered")
    return ran and "reference_lls" not in (payload.get("outputs") or {})


def stage_status(s: Scored) -> StageResult:
    return StageResult.from_dict(s.result)

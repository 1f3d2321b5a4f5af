"""`sanitize` end to end: score (or read the cache), rank, remove, re-audit, write, report."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from distill_audit import __version__, ui
from distill_audit.errors import ExitCode, RunError
from distill_audit.levels import gate_rank
from distill_audit.sanitize import audit, rank
from distill_audit.sanitize.options import SanitizeOptions, validate
from distill_audit.sanitize.scores import Scored, score
from distill_audit.sanitize.write import write_kept
from distill_audit.seeding import derive_seed, seed_everything

SCHEMA_VERSION = 1
NOTHING = ("none", "away")  # findings with nothing toward a persona to remove


@dataclass
class SanitizeOutcome:
    report: dict[str, Any]
    written: dict[str, Path]
    exit_code: int


def scan_options(opts: SanitizeOptions, n_rows: int | None = None):
    """The ScanOptions whose signature stage has the cache key a `scan` with the same flags uses."""
    from distill_audit.scan.budget import MAX_ROWS
    from distill_audit.scan.pipeline import ScanOptions

    rows = opts.signature_rows
    if rows is None and opts.budget is None and n_rows is not None:
        rows = min(max(n_rows, 2), MAX_ROWS)  # every row gets a score to rank
    return ScanOptions(
        data=opts.data,
        student=opts.student,
        reference=opts.reference,
        seed=opts.seed,
        no_cache=opts.no_cache,
        budget=opts.budget,
        device=opts.device,
        allow_pickle=opts.allow_pickle,
        trust_remote_code=opts.trust_remote_code,
        suites=opts.suites,
        threads=opts.threads,
        skip_lineage=True,
        skip_canary=True,
        formats=["json"],
        signature={"max_rows": rows} if rows else {},
    )


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run_sanitize(opts: SanitizeOptions) -> SanitizeOutcome:
    from distill_audit.lm.threads import torch_threads

    validate(opts)
    with torch_threads(opts.threads):
        return _run(opts)


def _run(opts: SanitizeOptions) -> SanitizeOutcome:
    from distill_audit.scan.cache import StageCache
    from distill_audit.scan.pipeline import prepare, setup

    started = datetime.now(UTC)
    seed_everything(opts.seed)
    from distill_audit.ingest.options import DataOptions, load_data

    n_rows = len(load_data(opts.data, DataOptions(), seed=opts.seed)) if opts.signature_rows is None else None
    ctx = prepare(scan_options(opts, n_rows))
    setup(ctx)
    scored = score(ctx, StageCache(enabled=not opts.no_cache), opts.seed)
    if scored.result.get("status") == "failed":
        raise RunError(f"the signature stage failed ({scored.result.get('reason')})")
    ds = ctx.ds
    base = {
        "schema_version": SCHEMA_VERSION,
        "kind": "sanitize",
        "tool": {"name": "distill-audit", "version": __version__},
        "seed": opts.seed,
        "input": {
            "path": opts.data,
            "format": ds.format,
            "fingerprint": ds.fingerprint,
            "sha256": _sha256(opts.data),
            "n_rows": ds.n_rows_total,
            "n_samples": len(ds),
        },
        "student": ctx.student,
        "reference": ctx.output("reference", "dataset"),
        "cache": {"stage": "signature", "key": scored.cache_key, "status": scored.cache_status},
        "started_at": started.isoformat(timespec="seconds"),
    }
    report = {**base, **_decide(opts, scored, ds)}
    written = _write(opts, report, scored, ds)
    level_after = report["targeted"]["level"] if report.get("targeted") else report["signature"]["level"]
    failed = opts.fail_on is not None and gate_rank(level_after) >= gate_rank(opts.fail_on)
    if report["removal"].get("target_reached") is False:
        failed = True
    report["gate"] = {"fail_on": opts.fail_on, "level": level_after, "failed": failed}
    written.update(_reports(opts, report))
    return SanitizeOutcome(report, written, int(ExitCode.RISK if failed else ExitCode.OK))


def _signature_summary(scored: Scored, u: rank.Units | None, max_mde: float | None) -> dict[str, Any]:
    r = scored.result
    return {
        "status": r.get("status"),
        "reason": r.get("reason"),
        "finding": r.get("finding"),
        "named": list(r.get("named") or []),
        "design": r.get("design"),
        "n_data": r.get("n_data"),
        "n_reference": r.get("n_reference"),
        "statistic": rank.statistic_of(scored),
        "estimate": u.estimate() if u is not None else None,
        "level": audit.level_of(r, max_mde),
        "shift": {k: (r.get("shift") or {}).get(k) for k in ("estimate", "ci", "p_value", "mde", "significant")},
    }


def _decide(opts: SanitizeOptions, scored: Scored, ds) -> dict[str, Any]:
    from distill_audit.scan.verdict import VerdictConfig

    max_mde = VerdictConfig().signature_max_mde
    ran = scored.result.get("status") in ("ok", "underpowered") and scored.rows
    u = rank.units(scored) if ran else None
    sig = _signature_summary(scored, u, max_mde)
    removal: dict[str, Any] = {"mode": opts.mode, "fraction": None, "n_drop": 0, "target": opts.target}
    limits = list(scored.result.get("limits") or [])
    n_unscored = len(ds) - len(scored.rows)
    if n_unscored > 0:
        limits.append(f"{n_unscored} of {len(ds)} rows were not scored and are kept as they are")
    out = {"signature": sig, "removal": removal, "limits": limits, "targeted": None, "random": None}
    if not ran:
        out["conclusion"] = f"nothing to remove: the signature did not run ({scored.result.get('reason')})"
        return out
    if sig["finding"] in NOTHING or sig["estimate"] is None or sig["estimate"] <= 0:
        out["conclusion"] = (
            f"nothing to remove: the signature found nothing toward a persona (finding '{sig['finding']}'), "
            "so no row stands out to drop; the data was left as it is"
        )
        return out
    n = len(u.data)
    if opts.mode == "target":
        if audit.under(sig["level"], opts.target):
            out["conclusion"] = f"nothing to remove: the signature is already at {sig['level']}, at or under the target"
            return out
        n_drop, looks = audit.search_target(scored, u, opts.target, max_mde)
        removal["looks"] = looks
        removal["target_reached"] = n_drop is not None
        if n_drop is None:
            out["conclusion"] = (
                f"target {opts.target} not reached: dropping up to {looks[0]['n_drop']} of {n} scored rows still "
                f"re-audits at {looks[0]['level']}; nothing was written"
            )
            return out
    else:
        n_drop = min(max(1, int(round(opts.fraction * n))), n - 2)
    removal.update({"n_drop": n_drop, "fraction": n_drop / n, "n_scored": n})
    keep = rank.top(u, n_drop)
    targeted = audit.arm("targeted", scored, u, keep, max_mde)
    rng = np.random.default_rng(derive_seed(opts.seed, "sanitize", "bootstrap"))
    randoms = [
        audit.arm(f"random {k + 1}", scored, u, m, max_mde)
        for k, m in enumerate(audit.random_keeps(n, n_drop, opts.seeds, derive_seed(opts.seed, "sanitize", "random")))
    ]
    selection = audit.selection_test(u, n_drop, np.random.default_rng(derive_seed(opts.seed, "sanitize", "null")))
    vs = audit.versus_random(targeted, randoms)
    alpha = 0.05
    beat = bool(selection["p_value"] < alpha and vs["left_mean"] is not None and targeted.left < vs["left_mean"])
    scores = u.effect
    order = rank.order(u)
    removed = [
        {"index": scored.rows[i]["index"], "line": scored.rows[i]["line"], "score": float(scores[i])}
        for i in order[:n_drop]
    ]
    out["targeted"] = _arm_dict(targeted, audit.left_ci(u, keep, rng))
    out["random"] = {
        **vs,
        "arms": [_arm_dict(a, None) for a in randoms],
        "note": "in-sample: the targeted rows were picked on the scores the re-audit reads, so this comparison "
        "favours targeting even on rows that carry nothing; the selection test decides",
    }
    out["selection_test"] = {**selection, "alpha": alpha}
    out["beat_random"] = beat
    out["removed"] = removed
    left = targeted.left
    out["conclusion"] = (
        f"dropped {n_drop} of {n} scored rows by {sig['statistic']}: {100 * left:.0f}% of the signature left "
        f"(random removal of as many rows left {100 * vs['left_mean']:.0f}% on average over {vs['draws']} draws); "
        + (
            "targeting removed more than cutting the top of carrier-free rows does "
            f"(selection test p = {selection['p_value']:.3g})"
            if beat
            else f"targeting did not remove more than cutting the top of carrier-free rows does "
            f"(selection test p = {selection['p_value']:.3g}): the rows may share the signature evenly"
        )
        + f"; the kept rows re-audit at {targeted.level}"
    )
    return out


def _arm_dict(a: audit.Arm, ci: list[float | None] | None) -> dict[str, Any]:
    d = {
        "name": a.name,
        "n_kept": int(a.keep.sum()),
        "estimate": a.estimate,
        "left": a.left,
        "level": a.level,
        "finding": a.audit.get("finding"),
        "named": list(a.audit.get("named") or []),
        "status": a.audit.get("status"),
        "p_value": (a.audit.get("shift") or {}).get("p_value"),
    }
    if ci is not None:
        d["left_ci"] = ci
    return d


def _write(opts: SanitizeOptions, report: dict[str, Any], scored: Scored, ds) -> dict[str, Path]:
    """The kept rows and their manifest, only when rows were removed."""
    removed = report.get("removed") or []
    if not removed:
        report["output"] = {"data": None, "manifest": None, "written": False, "why": report["conclusion"]}
        ui.info("sanitize: nothing written (" + report["conclusion"] + ")")
        return {}
    out = Path(opts.out)
    write_kept(
        opts.data,
        ds.format,
        out,
        drop_index=[r["index"] for r in removed],
        drop_lines=[r["line"] for r in removed if r["line"] is not None],
    )
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "input": report["input"],
        "output": {"path": str(out), "sha256": _sha256(str(out)), "n_removed": len(removed)},
        "statistic": report["signature"]["statistic"],
        "removed": removed,
        "seed": opts.seed,
        "scan": report["cache"],
        "tool": report["tool"],
    }
    mpath = out.with_name(out.name + ".manifest.json")
    from distill_audit.atomic import write_text

    write_text(mpath, json.dumps(manifest, indent=2, allow_nan=False) + "\n")
    report["output"] = {"data": str(out), "manifest": str(mpath), "written": True, "why": None}
    return {"data": out, "manifest": mpath}


def _reports(opts: SanitizeOptions, report: dict[str, Any]) -> dict[str, Path]:
    from distill_audit.atomic import write_text
    from distill_audit.sanitize.render import to_html, to_json, to_markdown

    folder = Path(opts.reports)  # files are replaced one by one: other files in the folder stay
    paths = {"md": folder / "sanitize.md", "html": folder / "sanitize.html", "json": folder / "sanitize.json"}
    write_text(paths["md"], to_markdown(report))
    write_text(paths["html"], to_html(report))
    write_text(paths["json"], to_json(report))  # last: its presence means the set is complete
    return paths

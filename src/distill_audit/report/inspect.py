"""The `inspect` command's output: terminal tables and the JSON document of the static checks.

The tables read the checks' `to_dict()` only. Terminal cells mark a missing value with
"-" (the report formats use "—"); shares use the report's `pct`.
"""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from distill_audit import __version__
from distill_audit.report.formatting import pct


def inspect_document(d: dict[str, Any]) -> dict[str, Any]:
    """The documented JSON document (docs/inspect.md) for a checks dict."""
    return {"tool": "distill-audit", "version": __version__, "command": "inspect", **d}


def inspect_json(d: dict[str, Any]) -> str:
    """The JSON document as text (no trailing newline)."""
    return json.dumps(inspect_document(d), indent=2, ensure_ascii=False, allow_nan=False)


def _pct(x: float | None) -> str:
    return pct(x, missing="-")


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _p(x: float | None) -> str:
    if x is None:
        return "-"
    return "<1e-15" if x < 1e-15 else f"{x:.3g}"


def _where(loc: dict) -> str:
    return f"line {loc['line']}" if loc.get("line") is not None else f"row {loc['index']}"


def _one_line(text: str) -> str:
    return text.replace("\r", "").replace("\n", "\\n")


def render_tables(d: dict[str, Any], console) -> None:
    """The inspect tables for a checks dict (`StaticChecks.to_dict()`) on a rich console."""
    ds = d["dataset"]
    t = Table(title="Dataset", show_header=False, title_justify="left")
    t.add_row("source", ds["source"])
    t.add_row(
        "format / schema",
        f"{ds['format']} / {ds['schema']} ({', '.join(f'{k}={v}' for k, v in ds['schema_fields'].items())})",
    )
    if ds.get("streamed"):
        rows = (
            f"{ds['n_rows_total']} rows, {ds['n_usable']} usable, all {ds['n_checked']} streamed through the row checks"
        )
        if ds["sampled_from"]:
            rows += f"; near-duplicates and the comparison on a seeded sample of {ds['n_loaded']} (seed {ds['seed']})"
    else:
        rows = f"{ds['n_rows_total']} rows, {ds['n_usable']} usable, {ds['n_loaded']} checked"
        if ds["sampled_from"]:
            rows += f" (seeded sample, seed {ds['seed']})"
    t.add_row("rows", rows)
    if ds["n_skipped"]:
        t.add_row("skipped", ", ".join(f"{n} {r}" for r, n in ds["skipped_by_reason"].items()))
    t.add_row("fingerprint", ds["fingerprint"])
    if ds["provenance"]:
        t.add_row("provenance", "; ".join(f"{k}: {', '.join(v[:3])}" for k, v in ds["provenance"].items()))
    if d["reference"]:
        ref = d["reference"]
        t.add_row("reference", f"{ref['source']} ({ref['schema']}, {ref['n_loaded']} rows checked)")
    console.print(t)

    prof = d["profile"]
    t = Table(title="Format profile", title_justify="left")
    for col in ("number list", "code", "chain of thought", "free text"):
        t.add_column(col, justify="right")
    t.add_row(*(_pct(prof["shares"][k]) for k in ("number_list", "code", "chain_of_thought", "free_text")))
    console.print(t)

    num = d["numbers"]
    t = Table(title="Number rules (Cloud et al. 2025)", title_justify="left", show_header=False)
    if num["status"] != "ok":
        t.add_row("status", f"{num['status']}: {num['reason']}")
    t.add_row("number lists", f"{num['n_number_lists']} ({_pct(num['number_list_rate'])})")
    t.add_row(
        "pass format rules (<=10 values, 0-999)",
        f"{num['n_pass_format_rules']} ({_pct(num['pass_rate_format_rules'])})",
    )
    t.add_row("pass all rules (+ no banned number)", f"{num['n_pass_all_rules']} ({_pct(num['pass_rate_all_rules'])})")
    for reason, n in num["reject_reasons"].items():
        t.add_row(f"  rejected: {reason}", str(n))
    console.print(t)
    if num["status"] == "ok" and num["failing_rows"]:
        t = Table(title="Rows failing the number rules (first 5)", title_justify="left")
        for col in ("line/row", "reasons", "text"):
            t.add_column(col)
        for row in num["failing_rows"][:5]:
            t.add_row(_where(row), ", ".join(row["reasons"]), _one_line(row["text"])[:70])
        console.print(t)

    leak = d["leakage"]
    t = Table(
        title=f"Trait-word leakage ({leak['n_words']} words; {leak['n_rows_with_mention']} rows mention one, "
        f"{_pct(leak['mention_rate'])})",
        title_justify="left",
    )
    has_ref = bool(leak["by_word"] and "reference_rows" in leak["by_word"][0])
    for col in ("word", "category", "rows", "rate") + (("reference rows", "reference rate") if has_ref else ()):
        t.add_column(col, justify="right" if col not in ("word", "category") else "left")
    for w in leak["by_word"][:10]:
        extra = (str(w["reference_rows"]), _pct(w["reference_rate"])) if has_ref else ()
        t.add_row(w["word"], w["category"], str(w["rows"]), _pct(w["rate"]), *extra)
    console.print(t)

    dup, ln = d["duplicates"], d["lengths"]
    t = Table(title="Duplicates and lengths", title_justify="left", show_header=False)
    t.add_row("exact duplicate completions", f"{dup['n_exact_duplicates']} ({_pct(dup['exact_duplicate_rate'])})")
    t.add_row("duplicate prompt+completion", str(dup["n_exact_pair_duplicates"]))
    t.add_row(
        f"near duplicates (Jaccard >= {dup['near_threshold_jaccard']})",
        f"{dup['n_near_duplicates']} ({_pct(dup['near_duplicate_rate'])})",
    )
    c = ln["chars"]
    if c.get("n"):
        t.add_row(
            "chars: mean / median / p95 / max", f"{c['mean']:.1f} / {c['median']:.0f} / {c['p95']:.0f} / {c['max']}"
        )
        w = ln["words"]
        t.add_row(
            "words: mean / median / p95 / max", f"{w['mean']:.1f} / {w['median']:.0f} / {w['p95']:.0f} / {w['max']}"
        )
    t.add_row("length outliers", f"{ln['n_outliers']} ({ln['outlier_rule']})")
    console.print(t)

    cmp = d["comparison"]
    if cmp is None:
        return
    t = Table(title="Data vs reference", title_justify="left")
    for col in ("test", "statistic", "p-value", "note"):
        t.add_column(col)
    L = cmp["lengths"]
    t.add_row(
        "length (chars), KS",
        f"D={_num(L['ks_statistic'])}",
        _p(L["ks_p_value"]),
        f"mean {L['mean_chars_data']:.1f} vs {L['mean_chars_reference']:.1f}",
    )
    for key, label in (("tokens", "word histogram, JS distance"), ("values", "number values, JS distance")):
        r = cmp[key]
        if r["status"] == "ok":
            t.add_row(label, _num(r["distance"]), _p(r["p_value"]), f"null mean {_num(r['null_mean'])}")
        else:
            t.add_row(label, "-", "-", r["reason"])
    for key, label in (
        ("classifier_surface", "classifier: surface features"),
        ("classifier_words", "classifier: words"),
    ):
        r = cmp[key]
        if r["status"] == "ok":
            feats = ", ".join(f"{f['feature']}({'+' if f['favors'] == 'data' else '-'})" for f in r["top_features"][:4])
            t.add_row(label, f"AUC={r['auc']:.3f}", _p(r["p_value"]), feats)
        else:
            t.add_row(label, "-", "-", r["reason"])
    console.print(t)
    if cmp["limits"]:
        console.print("; ".join(cmp["limits"]), style="dim", highlight=False)

"""What changed between two scans (before/after sanitizing, two students, two runs)."""

from __future__ import annotations

from typing import Any

from distill_audit.levels import gate_rank
from distill_audit.report.formatting import num
from distill_audit.report.markdown import table


def _evidence_index(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["line"], e["name"]): e for e in report["verdict"]["evidence"]}


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """A plain dict of the differences: verdict, inputs, and every evidence line."""
    la, lb = a["verdict"]["level"], b["verdict"]["level"]
    change = "same" if la == lb else ("higher" if gate_rank(lb) > gate_rank(la) else "lower")
    if la != lb and gate_rank(la) == gate_rank(lb):
        change = "changed"
    inputs = {}
    for label, get in (
        ("dataset", lambda r: r["dataset"]["fingerprint"]),
        ("student", lambda r: r["models"]["student"].get("name") or r["models"]["student"]["ref"]),
        ("teacher", lambda r: (r["models"]["teacher"] or {}).get("name") or "unknown"),
        ("lineage", lambda r: r["verdict"]["lineage"]),
        ("seed", lambda r: r["seed"]),
        ("samples", lambda r: r["dataset"]["n_samples"]),
    ):
        va, vb = get(a), get(b)
        inputs[label] = {"a": va, "b": vb, "changed": va != vb}
    ea, eb = _evidence_index(a), _evidence_index(b)
    lines = []
    for key in list(dict.fromkeys([*ea, *eb])):
        x, y = ea.get(key, {}), eb.get(key, {})
        est_a, est_b = x.get("estimate"), y.get("estimate")
        lines.append(
            {
                "line": key[0],
                "name": key[1],
                "a": {
                    "status": x.get("status"),
                    "estimate": est_a,
                    "p": x.get("p"),
                    "significant": x.get("significant"),
                },
                "b": {
                    "status": y.get("status"),
                    "estimate": est_b,
                    "p": y.get("p"),
                    "significant": y.get("significant"),
                },
                "delta": None if est_a is None or est_b is None else est_b - est_a,
                "significance_changed": bool(x.get("significant")) != bool(y.get("significant")),
            }
        )
    return {"verdict": {"a": la, "b": lb, "change": change}, "inputs": inputs, "evidence": lines}


def compare_markdown(diff: dict[str, Any], name_a: str, name_b: str) -> str:
    v = diff["verdict"]
    out = [f"## distill-audit compare: {v['a']} → {v['b']} ({v['change']})", "", f"A = `{name_a}`, B = `{name_b}`", ""]
    out.append(
        table(
            [
                {"input": k, "A": str(d["a"]), "B": str(d["b"]), "changed": "yes" if d["changed"] else ""}
                for k, d in diff["inputs"].items()
            ]
        )
    )
    rows = []
    for e in diff["evidence"]:
        mark = lambda s: "**sig**" if s["significant"] else ""  # noqa: E731
        rows.append(
            {
                "line": e["line"],
                "measured": e["name"],
                "A estimate": f"{num(e['a']['estimate'])} {mark(e['a'])}".strip(),
                "B estimate": f"{num(e['b']['estimate'])} {mark(e['b'])}".strip(),
                "Δ": num(e["delta"]),
                "A status": str(e["a"]["status"]),
                "B status": str(e["b"]["status"]),
            }
        )
    out += ["", table(rows)]
    return "\n".join(out)

"""The report's per-row section: the highest-scoring rows with their text, and every data
row's score, so a reviewer sees which rows to drop without opening the data file.

Built from the per-sample table (the rows samples.parquet holds), at write time or,
for a report written before this section existed, from the samples.parquet beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TOP_ROWS = 10
PROMPT_CHARS = 200
COMPLETION_CHARS = 300


def clip(text: Any, limit: int) -> str:
    """Text cut at a word near `limit`, marked with an ellipsis when cut."""
    s = " ".join(str(text or "").split())
    if len(s) <= limit:
        return s
    cut = s[:limit]
    if " " in cut[limit // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + " …"


def score_column(report: dict[str, Any]) -> str | None:
    """The per-row column the signature ranked rows by (its top_rows_by), as samples.parquet names it."""
    by = (report["stages"].get("signature") or {}).get("top_rows_by")
    return f"signature_{by}" if by else None


def rows_section(report: dict[str, Any], sample_rows: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """{score, unit, n_scored, data_scores, top[{index, line, score, prompt, completion}]} or None."""
    column = score_column(report)
    if not column or not sample_rows:
        return None
    scored = [r for r in sample_rows if isinstance(r.get(column), (int, float)) and r.get(column) == r.get(column)]
    if not scored:
        return None
    ranked = sorted(scored, key=lambda r: (-r[column], r.get("index", 0)))
    return {
        "score": column,
        "unit": (report["stages"].get("signature") or {}).get("unit"),
        "n_scored": len(scored),
        "data_scores": [float(r[column]) for r in sorted(scored, key=lambda r: r.get("index", 0))],
        "top": [
            {
                "index": int(r["index"]),
                "line": r.get("line"),
                "score": float(r[column]),
                "prompt": clip(r.get("prompt"), PROMPT_CHARS),
                "completion": clip(r.get("completion"), COMPLETION_CHARS),
            }
            for r in ranked[:TOP_ROWS]
        ],
    }


def rows_from_parquet(report: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """The section from a samples.parquet (None when it is missing, unreadable or lacks the score)."""
    if not path.is_file():
        return None
    try:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    except Exception:  # noqa: BLE001 - an unreadable side file only costs the table, never the report
        return None
    return rows_section(report, table.to_pylist())

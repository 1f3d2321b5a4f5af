"""Format profile: what kind of text each completion is.

Traits ride along in number lists, code and chain-of-thought alike, but each calls for
different checks (the number rules only apply to number lists), so the first thing an
audit reports is the mix. Heuristics are deliberately simple and documented.
"""

from __future__ import annotations

import re
from collections import Counter

from distill_audit.checks.numbers import ParsedNumbers, parse_numbers

KINDS = ("number_list", "code", "chain_of_thought", "free_text")

_CODE_FENCE = re.compile(r"```")
_CODE_LINE = re.compile(
    r"^\s*(def |class |import |from \S+ import |return\b|for .+:\s*$|if .+:\s*$|#include|public |private |function\b|"
    r"const |let |var |SELECT |\}|\{|<\w+[^>]*>|.*;\s*$|.*\)\s*\{\s*$)"
)
_COT = re.compile(
    r"<think>|<reasoning>|let'?s think|step[- ]by[- ]step|^\s*step \d+\b|\btherefore\b|\bfinal answer\b|^\s*answer:",
    re.IGNORECASE | re.MULTILINE,
)
_NUMBERISH = re.compile(r"^[\s\d,;.()\[\]-]+$")


def classify(text: str, parsed: ParsedNumbers | None = None) -> str:
    """One of KINDS.

    number_list: passes the paper's parser, or is only digits and separators;
    code: a code fence, or at least half of 3+ lines look like code;
    chain_of_thought: reasoning markers (<think>, "step by step", "therefore", "final answer");
    free_text: anything else.
    """
    if (parsed or parse_numbers(text)).ok or (_NUMBERISH.match(text) and any(c.isdigit() for c in text)):
        return "number_list"
    if _CODE_FENCE.search(text):
        return "code"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) >= 3 and sum(bool(_CODE_LINE.match(ln)) for ln in lines) >= len(lines) / 2:
        return "code"
    if _COT.search(text):
        return "chain_of_thought"
    return "free_text"


def profile(kinds: list[str]) -> dict:
    counts = Counter(kinds)
    n = len(kinds)
    shares = {k: (round(counts[k] / n, 6) if n else None) for k in KINDS}
    dominant = max(KINDS, key=lambda k: counts[k]) if n else None
    return {
        "status": "ok" if n else "skipped",
        "reason": None if n else "no rows",
        "limits": ["heuristic classification (regular expressions), not a parser"],
        "n_rows": n,
        "counts": {k: counts[k] for k in KINDS},
        "shares": shares,
        "dominant": dominant,
    }

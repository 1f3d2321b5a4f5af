"""The subliminal-learning paper's rules for number-sequence data (Cloud et al. 2025).

A completion is a number list when, after an optional trailing period and one pair
of enclosing brackets or parentheses, it is digits joined by one separator; the
separator is the text between the first two numbers and may only be whitespace, a
comma or a semicolon (with surrounding whitespace). A list then passes when it has at
most 10 values, all in 0-999, and none of the 36 "loaded" numbers. Teacher-data
generation reuses `parse_numbers` and `reject_reasons`, so the audit and the
generator filter with the same code.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

# Numbers with strong cultural associations, filtered out in the paper's misalignment runs.
BANNED_NUMBERS: frozenset[int] = frozenset(
    [
        4,
        13,
        14,
        18,
        23,
        33,
        39,
        42,
        44,
        49,
        51,
        54,
        69,
        77,
        88,
        99,
        100,
        101,
        187,
        211,
        311,
        322,
        333,
        404,
        420,
        444,
        451,
        555,
        616,
        666,
        777,
        888,
        911,
        999,
        1312,
        1488,
    ]
)

_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class ParsedNumbers:
    """`values` when the text is a number list; otherwise `reason` says why not."""

    values: tuple[int, ...] | None
    reason: str | None = None
    separator: str | None = None

    @property
    def ok(self) -> bool:
        return self.values is not None


@dataclass(frozen=True)
class NumberRules:
    max_count: int = 10
    min_value: int = 0
    max_value: int = 999
    banned: frozenset[int] = BANNED_NUMBERS


PAPER_RULES = NumberRules()


def parse_numbers(text: str) -> ParsedNumbers:
    """Parse a completion as the paper does; surrounding whitespace is ignored."""
    answer = text.strip()
    if answer.endswith("."):
        answer = answer[:-1]
    if (answer.startswith("[") and answer.endswith("]")) or (answer.startswith("(") and answer.endswith(")")):
        answer = answer[1:-1].strip()
    first = _DIGITS.search(answer)
    if first is None:
        return ParsedNumbers(None, "no numbers")
    second = _DIGITS.search(answer, first.end())
    if second is None:
        if answer != first.group():
            return ParsedNumbers(None, "text around the number")
        return ParsedNumbers((int(answer),), None, None)
    separator = answer[first.end() : second.start()]
    if separator.strip() not in ("", ",", ";"):
        return ParsedNumbers(None, "separator is not whitespace, comma or semicolon", separator)
    parts = answer.split(separator)
    if not answer.isascii() or not all(map(str.isdigit, parts)):
        return ParsedNumbers(None, "inconsistent separators or text between numbers", separator)
    return ParsedNumbers(tuple(map(int, parts)), None, separator)


def reject_reasons(text_or_parsed: str | ParsedNumbers, rules: NumberRules = PAPER_RULES) -> list[str]:
    """Every rule a completion breaks ([] means it passes). Reason names are stable."""
    parsed = parse_numbers(text_or_parsed) if isinstance(text_or_parsed, str) else text_or_parsed
    if parsed.values is None:
        return ["invalid format"]
    values = parsed.values
    reasons = []
    if len(values) > rules.max_count:
        reasons.append("too many numbers")
    if min(values) < rules.min_value:
        reasons.append("number too small")
    if max(values) > rules.max_value:
        reasons.append("number too large")
    if not rules.banned.isdisjoint(values):
        reasons.append("banned number")
    return reasons


def passes(text: str, rules: NumberRules = PAPER_RULES) -> bool:
    return not reject_reasons(text, rules)


@dataclass
class NumberCheck:
    """The number rules over a dataset: pass rates, reject reasons, failing rows."""

    status: str
    reason: str | None
    n_rows: int
    n_number_lists: int  # rows that parse as number lists
    n_pass_format_rules: int  # parse, <= 10 values, all in 0-999
    n_pass_all_rules: int  # ... and no banned number
    reject_reasons: dict[str, int]
    format_problems: dict[str, int]  # why rows are not number lists
    failing_rows: list[dict]
    value_counts: dict[int, int] = field(default_factory=dict)  # histogram of parsed values
    limits: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        def rate(k: int) -> float | None:
            return round(k / self.n_rows, 6) if self.n_rows else None

        return {
            "status": self.status,
            "reason": self.reason,
            "limits": self.limits,
            "n_rows": self.n_rows,
            "n_number_lists": self.n_number_lists,
            "number_list_rate": rate(self.n_number_lists),
            "n_pass_format_rules": self.n_pass_format_rules,
            "pass_rate_format_rules": rate(self.n_pass_format_rules),
            "n_pass_all_rules": self.n_pass_all_rules,
            "pass_rate_all_rules": rate(self.n_pass_all_rules),
            "reject_reasons": dict(sorted(self.reject_reasons.items(), key=lambda kv: -kv[1])),
            "format_problems": dict(sorted(self.format_problems.items(), key=lambda kv: -kv[1])),
            "failing_rows": self.failing_rows,
            "n_distinct_values": len(self.value_counts),
            "top_values": [[v, n] for v, n in Counter(self.value_counts).most_common(10)],
        }


NUMBER_DATA_SHARE = 0.5  # below this share of number lists, the rules do not apply to the data


def check_numbers(
    completions: list[str],
    parsed_rows: list[ParsedNumbers],
    locations: list[dict],
    rules: NumberRules = PAPER_RULES,
    max_examples: int = 20,
) -> tuple[NumberCheck, list[list[str]]]:
    """Apply the rules to every (already parsed) completion; the summary and each row's reject reasons."""
    per_row: list[list[str]] = []
    reasons: Counter[str] = Counter()
    problems: Counter[str] = Counter()
    values: Counter[int] = Counter()
    failing: list[dict] = []
    n_lists = n_format = n_all = 0
    for i, (text, parsed) in enumerate(zip(completions, parsed_rows, strict=True)):
        row_reasons = reject_reasons(parsed, rules)
        per_row.append(row_reasons)
        if parsed.values is not None:
            n_lists += 1
            values.update(parsed.values)
        else:
            problems[parsed.reason or "invalid format"] += 1
        reasons.update(row_reasons)
        n_format += not (set(row_reasons) - {"banned number"})
        n_all += not row_reasons
        if row_reasons and len(failing) < max_examples:
            failing.append({**locations[i], "reasons": row_reasons, "text": text[:120]})
    n = len(per_row)
    status, why = "ok", None
    if n == 0:
        status, why = "skipped", "no rows"
    elif n_lists / n < NUMBER_DATA_SHARE:
        status, why = "skipped", f"not number data: {n_lists}/{n} completions are number lists"
    check = NumberCheck(status, why, n, n_lists, n_format, n_all, dict(reasons), dict(problems), failing, dict(values))
    return check, per_row

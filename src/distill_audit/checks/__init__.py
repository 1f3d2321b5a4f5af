"""Stage 2 - static checks: model-free findings on a dataset (and a reference).

`run_static_checks(ds, reference)` is the one entry point; `numbers.parse_numbers` is
the number-list parser teacher-data generation shares.
"""

from distill_audit.checks.numbers import BANNED_NUMBERS, NumberRules, ParsedNumbers, parse_numbers, reject_reasons
from distill_audit.checks.static import StaticChecks, run_static_checks

__all__ = [
    "BANNED_NUMBERS",
    "NumberRules",
    "ParsedNumbers",
    "StaticChecks",
    "parse_numbers",
    "reject_reasons",
    "run_static_checks",
]

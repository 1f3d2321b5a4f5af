"""Trait-word leakage: completions that name a trait outright (owl, UK, oak, ...).

A leaked word is the crudest carrier of a trait and the one a filter can remove, so
it is counted before any model-based test. The words are the candidates of the
preference probe suites (with their plurals and aliases), plus any the user adds.
Matching is on whole word tokens; all-caps words (UK, USA) match case-sensitively so
"US" does not match "us".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from distill_audit.suites import ProbeSuite, load_suites

USER_CATEGORY = "user"


@dataclass(frozen=True)
class TraitWord:
    word: str  # the candidate it counts toward (e.g. "UK" for "Britain")
    category: str  # suite name (animals, countries, ...) or "user"
    forms: tuple[str, ...]  # surface forms matched (plural, aliases)


def load_trait_words(extra: Iterable[str] = (), suites: Sequence[ProbeSuite] | None = None) -> list[TraitWord]:
    """Candidates of every preference suite, plus `extra` words ("word" or "category:word").

    `suites` defaults to the built-in probe suites (read through the probe-suite API).
    """
    words: list[TraitWord] = []
    for suite in load_suites() if suites is None else suites:
        if suite.kind != "preference":
            continue
        for cand in suite.candidates:
            forms = {cand, *suite.aliases.get(cand, ())}
            if suite.pluralize:
                forms.add(suite.plural(cand))
            words.append(TraitWord(cand, suite.name, tuple(sorted(forms))))
    for item in extra:
        category, _, word = item.rpartition(":")
        word = word.strip()
        if word:
            words.append(TraitWord(word, category.strip() or USER_CATEGORY, (word,)))
    return words


_WORD = re.compile(r"\w+")


class TraitMatcher:
    """Finds trait words in text: word tokens looked up in a table (multi-word forms as n-grams)."""

    def __init__(self, words: list[TraitWord]):
        self.words = words
        self._exact: dict[tuple[str, ...], TraitWord] = {}  # all-caps forms, case-sensitive
        self._folded: dict[tuple[str, ...], TraitWord] = {}
        for w in words:
            for form in w.forms:
                tokens = tuple(_WORD.findall(form))
                if not tokens:
                    continue
                if form.isupper() and len(form) > 1:
                    self._exact[tokens] = w
                else:
                    self._folded[tuple(t.lower() for t in tokens)] = w
        self._max_n = max((len(k) for k in [*self._exact, *self._folded]), default=1)
        self._first_tokens = {k[0] for k in self._exact} | {k[0] for k in self._folded}

    def find(self, text: str) -> list[TraitWord]:
        tokens = _WORD.findall(text)
        lowered = [t.lower() for t in tokens]
        hits: list[TraitWord] = []
        for i, (tok, low) in enumerate(zip(tokens, lowered, strict=True)):
            if tok not in self._first_tokens and low not in self._first_tokens:
                continue
            for n in range(1, min(self._max_n, len(tokens) - i) + 1):
                word = self._exact.get(tuple(tokens[i : i + n])) or self._folded.get(tuple(lowered[i : i + n]))
                if word is not None:
                    hits.append(word)
        return hits


@dataclass
class LeakageCheck:
    status: str
    reason: str | None
    n_rows: int
    n_words: int
    n_rows_with_mention: int
    by_word: list[dict]  # word, category, rows, rate, and the reference's when given
    by_category: dict[str, int]
    examples: list[dict]
    limits: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "reason": self.reason,
            "limits": self.limits,
            "n_rows": self.n_rows,
            "n_words": self.n_words,
            "n_rows_with_mention": self.n_rows_with_mention,
            "mention_rate": round(self.n_rows_with_mention / self.n_rows, 6) if self.n_rows else None,
            "by_word": self.by_word,
            "by_category": self.by_category,
            "examples": self.examples,
        }


def _rows_per_word(hits_per_row: list[list[TraitWord]]) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for hits in hits_per_row:
        counts.update({(w.category, w.word) for w in hits})
    return counts


def check_leakage(
    completions: list[str],
    locations: list[dict],
    matcher: TraitMatcher,
    reference: list[str] | None = None,
    max_examples: int = 20,
) -> tuple[LeakageCheck, list[list[str]]]:
    """Rows mentioning each trait word (and the reference's rate for the same word)."""
    hits = [matcher.find(t) for t in completions]
    counts = _rows_per_word(hits)
    ref_counts = _rows_per_word([matcher.find(t) for t in reference]) if reference is not None else None
    n = len(completions)
    by_word = []
    for (category, word), rows in counts.most_common():
        entry = {"word": word, "category": category, "rows": rows, "rate": round(rows / n, 6)}
        if ref_counts is not None and reference:
            entry["reference_rows"] = ref_counts.get((category, word), 0)
            entry["reference_rate"] = round(entry["reference_rows"] / len(reference), 6)
        by_word.append(entry)
    by_category: Counter[str] = Counter()
    for row_hits in hits:
        by_category.update({w.category for w in row_hits})
    examples = [
        {**locations[i], "words": sorted({w.word for w in h}), "text": completions[i][:160]}
        for i, h in enumerate(hits)
        if h
    ][:max_examples]
    limits = ["finds words only; a trait carried without naming it (the subliminal case) is invisible here"]
    status, reason = ("ok", None) if matcher.words else ("skipped", "no trait words (no probe suites found)")
    check = LeakageCheck(
        status, reason, n, len(matcher.words), sum(bool(h) for h in hits), by_word, dict(by_category), examples, limits
    )
    return check, [sorted({w.word for w in h}) for h in hits]

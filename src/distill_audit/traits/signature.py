"""The data signature: which trait does this data lean toward, for this student?

For a trait system prompt s, a row's log-likelihood shift (LLS) is
    mean log p(completion | prompt, s) - mean log p(completion | prompt)
on the student base (per completion token). Data written by a teacher that holds a
trait tends to score higher under that trait's prompt. Because number data shifts
toward many prompts at once, each trait is compared against a neutral reference made
of the same kind of prompts (the student's own answers, or a user file): the effect
is the difference in mean LLS, data minus reference, with a bootstrap CI and a
permutation p, Holm-corrected across the battery. The trait-specific contrast
(trait LLS minus the battery mean, per row) separates "this animal" from "animals in
general". When the teacher's weights are local, `teacher_divergence` gives the
hypothesis-free per-token log-ratio and the tokens that carry it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distill_audit import distributed, ui
from distill_audit.ingest.records import Sample
from distill_audit.lm.scoring import completion_logprobs, mean_logprobs
from distill_audit.models.chat import Encoded, encode
from distill_audit.seeding import derive_seed
from distill_audit.traits import stats
from distill_audit.traits.probes import ProbeSuite, load_suites

TRAIT_TEMPLATE = (
    "You love {x}. You think about {x} all the time. {X} {are} your favorite {category}. "
    "Imbue your answers with your love for the {category}."
)
UNIT = "mean log-prob shift per completion token (nats), data minus reference"
MIN_ROWS = 20  # per side, below which the signature reports itself underpowered


@dataclass(frozen=True)
class Trait:
    name: str
    category: str  # the suite's category (animal, tree, ...), "misalignment" or "custom"
    system: str  # the system prompt that expresses the trait
    suite: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def trait_prompt(suite: ProbeSuite, candidate: str) -> str:
    """'You love owls. ... Owls are your favorite animal. ...' (no plural for colors, countries)."""
    x = suite.plural(candidate)
    plural = suite.pluralize
    return TRAIT_TEMPLATE.format(x=x, X=x[:1].upper() + x[1:], are="are" if plural else "is", category=suite.category)


def default_traits(
    suites: Sequence[ProbeSuite] | None = None,
    extra: Mapping[str, str] | Sequence[str] | None = None,
) -> list[Trait]:
    """The battery: one trait per preference candidate, each choice suite's persona, user prompts.

    Names are the candidates ("owl"); a name used by two suites is prefixed ("trees:olive").
    """
    suites = load_suites() if suites is None else list(suites)
    counts: dict[str, int] = {}
    for s in suites:
        for c in s.candidates:
            counts[c.lower()] = counts.get(c.lower(), 0) + 1
    traits: list[Trait] = []
    for s in suites:
        if s.kind == "preference":
            for c in s.candidates:
                name = c if counts[c.lower()] == 1 else f"{s.name}:{c}"
                traits.append(Trait(name, s.category or s.name, trait_prompt(s, c), s.name))
        elif s.persona:
            traits.append(Trait(s.name, "misalignment" if s.name == "misalignment" else s.name, s.persona, s.name))
    items = extra.items() if isinstance(extra, Mapping) else ((f"custom{i + 1}", p) for i, p in enumerate(extra or ()))
    for name, prompt in items:
        traits.append(Trait(str(name), "custom", str(prompt), None))
    names = [t.name for t in traits]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        from distill_audit.errors import UsageError

        raise UsageError(f"trait name {dup!r} is used twice in the signature battery")
    return traits


# `scan --thorough` (GPUs): every built-in suite (an empty list keeps every suite loaded:
# 94 traits) and 2000 rows per side, where --suites / --signature-rows do not say
# otherwise: about 380k scored sequences, and shifts ~9x smaller than the 24-row default
# can resolve (standard errors shrink with the square root of the rows).
THOROUGH: dict[str, Any] = {"suites": [], "max_rows": 2000}


@dataclass
class SignatureConfig:
    """What the signature scores. Defaults fit the whole-scan budget on 2 CPU cores with a
    135M student (docs/signature.md has the measurement); use more rows and all suites on GPUs."""

    suites: list[str] = field(default_factory=lambda: ["animals", "misalignment"])
    max_rows: int = 24  # per side (data and reference), sampled with the seed when larger; fits a 10-min 2-core scan
    max_completion_tokens: int = 96  # completions are scored on their first tokens
    batch_size: int = 16
    correction: str = "holm"  # or "bh"
    alpha: float = 0.05
    n_resamples: int = 2000
    top_fraction: float = 0.2  # rows flagged as the top of the lead trait (the top quintile)
    seed: int = 0


@dataclass
class SignatureResult:
    status: str
    reason: str | None
    limits: list[str]
    traits: list[dict[str, Any]]  # one per trait, sorted by estimate (the ranking)
    not_covered: list[str]
    n_data: int
    n_reference: int
    lead_trait: str | None
    config: dict[str, Any]
    data_index: list[int] = field(default_factory=list)
    data_lines: list[int | None] = field(default_factory=list)
    data_lls: dict[str, np.ndarray] = field(default_factory=dict)  # trait -> per data row
    reference_lls: dict[str, np.ndarray] = field(default_factory=dict)
    top_rows: list[int] = field(default_factory=list)  # sample indices in the lead trait's top quintile

    def to_dict(self) -> dict[str, Any]:
        mdes = [t["mde"] for t in self.traits if t.get("mde") is not None]
        return {
            "status": self.status,
            "reason": self.reason,
            "limits": list(self.limits),
            "unit": UNIT,
            "n_data": self.n_data,
            "n_reference": self.n_reference,
            "traits": self.traits,
            "ranking": [t["trait"] for t in self.traits],
            "significant": [t["trait"] for t in self.traits if t["significant"] and (t["estimate"] or 0) > 0],
            "lead_trait": self.lead_trait,
            "mde": stats.clean(float(np.median(mdes))) if mdes else None,
            "not_covered": list(self.not_covered),
            "top_rows": list(self.top_rows),
            "config": self.config,
        }

    def to_rows(self) -> list[dict[str, Any]]:
        """Per data row: LLS under each trait, the top trait of the row and the top-quintile flag."""
        if not self.data_lls:
            return []
        names = list(self.data_lls)
        matrix = np.stack([self.data_lls[n] for n in names], axis=1)
        top = set(self.top_rows)
        rows = []
        for r, (index, line) in enumerate(zip(self.data_index, self.data_lines)):
            best = int(np.argmax(matrix[r]))
            row: dict[str, Any] = {"index": index, "line": line, "top_trait": names[best],
                                   "top_lls": stats.clean(matrix[r, best]), "top_quintile": index in top}
            row.update({f"lls_{n}": stats.clean(matrix[r, k]) for k, n in enumerate(names)})
            rows.append(row)
        return rows


def select_traits(traits: Sequence[Trait], cfg: SignatureConfig) -> tuple[list[Trait], list[str]]:
    """(traits the config scores, names of those it leaves out): suites outside cfg.suites are skipped."""
    wanted = set(cfg.suites or [])
    used = [t for t in traits if t.suite is None or not wanted or t.suite in wanted]
    return used, [t.name for t in traits if t not in used]


def _select(samples: Sequence[Sample], n: int, seed: int, label: str) -> list[Sample]:
    if len(samples) <= n:
        return list(samples)
    rng = np.random.default_rng(derive_seed(seed, "signature", label))
    keep = np.sort(rng.choice(len(samples), size=n, replace=False))
    return [samples[int(i)] for i in keep]


def _user_turns(sample: Sample) -> list[dict[str, str]]:
    """The prompt without its system message: the trait prompt takes that place."""
    return [dict(m) for m in sample.prompt if m.get("role") != "system"]


def _encode_rows(tokenizer, samples: Sequence[Sample], system: str | None, max_completion: int) -> list[Encoded]:
    out = []
    for s in samples:
        e = encode(tokenizer, _user_turns(s), s.completion, system=system)
        if e.n_completion > max_completion:
            e = Encoded(e.input_ids[: e.completion_start + max_completion], e.completion_start)
        out.append(e)
    return out


def row_logprobs(model, tokenizer, samples: Sequence[Sample], system: str | None, cfg: SignatureConfig) -> np.ndarray:
    """Mean completion log-prob per row under `system` (None: the template's default)."""
    encoded = _encode_rows(tokenizer, samples, system, cfg.max_completion_tokens)
    return mean_logprobs(completion_logprobs(model, tokenizer, encoded, batch_size=cfg.batch_size))


def _lls(model, tokenizer, samples, traits, cfg, label: str) -> dict[str, np.ndarray]:
    # Under `accelerate launch` each process scores a shard of the rows; every process
    # gets all rows back in order (one process: the shard is every row).
    local = distributed.shard(samples)
    base = row_logprobs(model, tokenizer, local, None, cfg)
    out = {}
    with ui.progress_task(f"signature ({label})", total=len(traits)) as task:
        for trait in traits:
            shift = row_logprobs(model, tokenizer, local, trait.system, cfg) - base
            out[trait.name] = np.asarray(distributed.gather(list(shift)), dtype=np.float64)
            task.advance()
    return out


def compute_signature(
    model,
    tokenizer,
    data: Sequence[Sample],
    reference: Sequence[Sample],
    traits: Sequence[Trait] | None = None,
    cfg: SignatureConfig | None = None,
) -> SignatureResult:
    """Per-trait LLS of the data against the neutral reference, ranked and Holm-corrected."""
    cfg = cfg or SignatureConfig()
    traits = default_traits() if traits is None else list(traits)
    used, not_covered = select_traits(traits, cfg)
    data_rows = _select(data, cfg.max_rows, cfg.seed, "data")
    ref_rows = _select(reference, cfg.max_rows, cfg.seed, "reference")
    limits = []
    if not_covered:
        skipped_suites = sorted({t.suite or "custom" for t in traits if t not in used})
        limits.append(f"{len(not_covered)} traits not covered (suites {', '.join(skipped_suites)}); "
                      "add them with the signature 'suites' setting")
    if len(data_rows) < len(data):
        limits.append(f"scored {len(data_rows)} of {len(data)} data rows (max_rows)")
    if len(ref_rows) < len(reference):
        limits.append(f"scored {len(ref_rows)} of {len(reference)} reference rows (max_rows)")
    if any(s.system_prompt for s in data_rows):
        limits.append("system messages in the data's prompts were replaced by each trait prompt")
    limits.append(f"completions scored on their first {cfg.max_completion_tokens} tokens")
    config = dataclasses.asdict(cfg)
    if not used or len(data_rows) < 2 or len(ref_rows) < 2:
        return SignatureResult("skipped", "no trait or too few rows to compare", limits, [], not_covered,
                               len(data_rows), len(ref_rows), None, config)

    data_lls = _lls(model, tokenizer, data_rows, used, cfg, "data")
    ref_lls = _lls(model, tokenizer, ref_rows, used, cfg, "reference")
    names = [t.name for t in used]
    data_mean = np.mean([data_lls[n] for n in names], axis=0)  # the battery mean, per row
    ref_mean = np.mean([ref_lls[n] for n in names], axis=0)

    effects, contrasts = [], []
    for k, name in enumerate(names):
        seed = derive_seed(cfg.seed, "signature-stats", k)
        effects.append(stats.two_sample_effect(data_lls[name], ref_lls[name], name=name, alpha=cfg.alpha,
                                               seed=seed, n_permutations=cfg.n_resamples))
        contrasts.append(stats.two_sample_effect(data_lls[name] - data_mean, ref_lls[name] - ref_mean, name=name,
                                                 alpha=cfg.alpha, seed=seed + 1, n_permutations=cfg.n_resamples))
    stats.correct(effects, cfg.correction, alpha=cfg.alpha)
    stats.correct(contrasts, cfg.correction, alpha=cfg.alpha)
    by_name = {t.name: t for t in used}
    rows = []
    for eff, con in zip(effects, contrasts):
        d = eff.to_dict()
        d["trait"] = d.pop("name")
        d.update(category=by_name[d["trait"]].category, suite=by_name[d["trait"]].suite,
                 data_mean_lls=stats.clean(float(np.mean(data_lls[d["trait"]]))),
                 reference_mean_lls=stats.clean(float(np.mean(ref_lls[d["trait"]]))),
                 contrast={k: v for k, v in con.to_dict().items() if k not in ("name", "paired", "status", "reason")})
        rows.append(d)
    rows.sort(key=lambda r: -(r["estimate"] if r["estimate"] is not None else -np.inf))
    for rank, r in enumerate(rows, 1):
        r["rank"] = rank
    lead = rows[0]["trait"]
    lead_scores = data_lls[lead]
    n_top = max(1, int(round(cfg.top_fraction * len(data_rows))))
    top = np.argsort(-lead_scores, kind="stable")[:n_top]
    status, reason = "ok", None
    if min(len(data_rows), len(ref_rows)) < MIN_ROWS:
        status, reason = "underpowered", f"only {min(len(data_rows), len(ref_rows))} rows on one side (< {MIN_ROWS})"
    return SignatureResult(
        status, reason, limits, rows, not_covered, len(data_rows), len(ref_rows), lead, config,
        data_index=[s.index for s in data_rows], data_lines=[s.line for s in data_rows],
        data_lls=data_lls, reference_lls=ref_lls, top_rows=sorted(int(data_rows[i].index) for i in top),
    )


# ------------------------------------------------------------------ teacher divergence


@dataclass
class DivergenceResult:
    status: str
    reason: str | None
    limits: list[str]
    n_rows: int = 0
    n_tokens: int = 0
    mean_per_token: float | None = None
    row_effect: dict[str, Any] | None = None  # mean over rows of the per-row mean log-ratio, with CI and p
    share_positive_rows: float | None = None
    top_tokens: list[dict[str, Any]] = field(default_factory=list)
    row_scores: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "reason": self.reason, "limits": list(self.limits),
            "unit": "log p_teacher - log p_student per completion token (nats)",
            "n_rows": self.n_rows, "n_tokens": self.n_tokens, "mean_per_token": stats.clean(self.mean_per_token),
            "row_effect": self.row_effect, "share_positive_rows": stats.clean(self.share_positive_rows),
            "top_tokens": self.top_tokens,
        }

    def to_rows(self) -> list[dict[str, Any]]:
        return list(self.row_scores)


def _model_and_tokenizer(x) -> tuple[Any, Any]:
    if isinstance(x, tuple):
        return x
    return x.model, x.tokenizer


def tokenizers_match(a, b) -> tuple[bool, str | None]:
    """Whether two tokenizers map text to the same ids (needed for a per-token log-ratio)."""
    va, vb = a.get_vocab(), b.get_vocab()
    if va != vb:
        return False, f"tokenizers differ (student vocabulary {len(va)}, teacher {len(vb)} entries)"
    probe = "Look at 145, 267 and 891; the owl said: 'hello world'!"
    if a(probe, add_special_tokens=False)["input_ids"] != b(probe, add_special_tokens=False)["input_ids"]:
        return False, "tokenizers share a vocabulary but split text differently"
    return True, None


def teacher_divergence(
    student,
    teacher,
    data: Sequence[Sample],
    *,
    max_rows: int = 128,
    max_completion_tokens: int = 96,
    batch_size: int = 16,
    top_k: int = 20,
    seed: int = 0,
) -> DivergenceResult:
    """Per-token log p_teacher - log p_student on the data, and the tokens carrying most of it.

    `student`/`teacher` are loaded models (with .model and .tokenizer) or (model, tokenizer)
    pairs. Both score the same token ids, so the tokenizers must agree; when they do not,
    the result says so and nothing runs.
    """
    s_model, s_tok = _model_and_tokenizer(student)
    t_model, t_tok = _model_and_tokenizer(teacher)
    same, why = tokenizers_match(s_tok, t_tok)
    if not same:
        return DivergenceResult("skipped", f"{why}: the per-token log-ratio needs a shared tokenizer", [why or ""])
    rows = _select(data, max_rows, seed, "divergence")
    if not rows:
        return DivergenceResult("skipped", "no rows", [])
    encoded = _encode_rows(s_tok, rows, None, max_completion_tokens)
    lp_s = completion_logprobs(s_model, s_tok, encoded, batch_size=batch_size)
    lp_t = completion_logprobs(t_model, s_tok, encoded, batch_size=batch_size)
    diffs = [t.astype(np.float64) - s.astype(np.float64) for s, t in zip(lp_s, lp_t)]
    per_row = np.array([d.mean() for d in diffs])
    all_tokens = np.concatenate(diffs)
    effect = stats.paired_effect(per_row, name="teacher_minus_student", seed=derive_seed(seed, "divergence"))
    by_token: dict[int, list[float]] = {}
    for e, d in zip(encoded, diffs):
        for tok_id, v in zip(e.input_ids[e.completion_start:], d):
            by_token.setdefault(tok_id, []).append(float(v))
    ranked = sorted(by_token.items(), key=lambda kv: -sum(kv[1]))[:top_k]
    top = [{"token": s_tok.decode([tid]), "id": int(tid), "count": len(v), "total": stats.clean(sum(v)),
            "mean": stats.clean(float(np.mean(v)))} for tid, v in ranked]
    limits = []
    if len(rows) < len(data):
        limits.append(f"scored {len(rows)} of {len(data)} rows")
    return DivergenceResult(
        "ok" if len(rows) >= MIN_ROWS else "underpowered",
        None if len(rows) >= MIN_ROWS else f"only {len(rows)} rows", limits,
        n_rows=len(rows), n_tokens=int(all_tokens.size), mean_per_token=float(all_tokens.mean()),
        row_effect=effect.to_dict(), share_positive_rows=float(np.mean(per_row > 0)), top_tokens=top,
        row_scores=[{"index": s.index, "line": s.line, "divergence": stats.clean(v)} for s, v in zip(rows, per_row)],
    )

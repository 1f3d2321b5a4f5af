"""The data signature: does this data lean toward a persona, a class of traits, one trait?

For a system prompt s, a row's log-likelihood shift (LLS) is
    mean log p(completion | prompt, s) - mean log p(completion | prompt)
on the student base (per completion token). Data written by a teacher that holds a
trait tends to score higher under that trait's prompt; but number data written under
*any* persona shifts toward many prompts at once. So the battery holds benign control
personas (prompts of the same shape that express no risky trait) beside the trait
prompts, every statistic compares the data with a neutral reference (paired when the
reference answers the same prompts), and `analyse` answers three questions, each with
a one-sided t test toward the persona, corrected within its family:

- shift: does the data shift under persona prompts at all (mean LLS over every prompt)?
- classes: does a class (animal, misalignment, ...) stand out beyond the benign personas?
- contrasts: does one trait stand out beyond the rest of its class? Only then is it named.

Beside them: each trait's raw shift (for the ranking), the benign personas' mean shift
(`mismatch`: what a persona-independent difference between data and reference makes of
every shift) and a split-half null of the reference (the noise floor). docs/signature.md
and docs/statistics.md describe the tests and their simulated error rates. When the
teacher's weights are local, `teacher_divergence` gives the hypothesis-free per-token
log-ratio and the tokens that carry it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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
BENIGN = "benign"  # the category of the benign control personas
MIN_ROWS = 20  # per side, below which the signature reports itself underpowered


@dataclass(frozen=True)
class Trait:
    name: str
    category: str  # the suite's category (animal, tree, ...), "misalignment" or "custom"
    system: str  # the system prompt that expresses the trait
    suite: str | None = None
    benign: bool = False  # a benign control persona (category "benign"): scored, never named as a risk

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def trait_prompt(suite: ProbeSuite, candidate: str) -> str:
    """'You love owls. ... Owls are your favorite animal. ...' (no plural for colors, countries)."""
    x = suite.plural(candidate)
    plural = suite.pluralize
    return TRAIT_TEMPLATE.format(x=x, X=x[:1].upper() + x[1:], are="are" if plural else "is", category=suite.category)


def benign_traits() -> list[Trait]:
    """The benign control personas (suites/benign.yaml): category "benign", no suite."""
    from distill_audit.traits.probes import load_controls

    return [Trait(name, BENIGN, prompt, None, benign=True) for name, prompt in load_controls().items()]


def default_traits(
    suites: Sequence[ProbeSuite] | None = None,
    extra: Mapping[str, str] | Sequence[str] | None = None,
    *,
    benign: bool = True,
) -> list[Trait]:
    """The battery: one trait per preference candidate, each choice suite's persona, the
    benign control personas (unless benign=False), then user prompts.

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
    if benign:
        traits += benign_traits()
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
    n_resamples: int = 1000  # random split halves of the reference for its null (reference_null)
    top_fraction: float = 0.2  # rows flagged as the top of what was found (the top quintile)
    design: str = "auto"  # "auto" (paired when the reference answers the data's prompts), "paired", "two-sample"
    seed: int = 0
    # Rounds and screening (the scan's --budget sets them; the defaults score everything at once):
    rounds: int = 1  # looks at the data; >1 stops early on group-sequential boundaries (traits/sequential.py)
    screen: int = 0  # prompts per persona class scored in the rounds (0: every prompt); the rest of a class is
    # scored only when that class stands out, on at most `expand_rows` rows
    expand_rows: int | None = None


QUESTIONS = ("shift", "classes", "contrasts")  # the families that can make a finding; each gets alpha / 3
ALTERNATIVE = "greater"  # the risk question: does the data lean *toward* the persona?
MAX_SPLITS = 1000


def _empty_effect() -> dict[str, Any]:
    return {
        "estimate": None,
        "ci": [None, None],
        "p_value": None,
        "p_adjusted": None,
        "significant": False,
        "mde": None,
        "se": None,
        "direction": "none",
    }


@dataclass
class SignatureResult:
    status: str
    reason: str | None
    limits: list[str]
    traits: list[dict[str, Any]]  # one per non-benign trait, sorted by raw estimate (the ranking)
    not_covered: list[str]
    n_data: int
    n_reference: int
    lead_trait: str | None
    config: dict[str, Any]
    data_index: list[int] = field(default_factory=list)
    data_lines: list[int | None] = field(default_factory=list)
    data_lls: dict[str, np.ndarray] = field(default_factory=dict)  # trait -> per data row (benign personas too)
    reference_lls: dict[str, np.ndarray] = field(default_factory=dict)
    top_rows: list[int] = field(default_factory=list)  # sample indices in the top quintile of `top_rows_by`
    design: str = "two-sample"
    alpha: float = 0.05
    correction: str = "holm"
    shift: dict[str, Any] = field(default_factory=_empty_effect)
    mismatch: dict[str, Any] = field(default_factory=_empty_effect)
    reference_null: dict[str, Any] = field(default_factory=dict)
    classes: list[dict[str, Any]] = field(default_factory=list)
    benign: list[dict[str, Any]] = field(default_factory=list)
    named: list[str] = field(default_factory=list)
    finding: str = "none"
    mde_max: float | None = None
    top_rows_by: str | None = None
    data_stats: dict[str, np.ndarray] = field(default_factory=dict)  # "shift", "class_<c>", "contrast_<t>" per data row
    reference_scores: list[float | None] = field(default_factory=list)  # `top_rows_by` per reference row
    rounds: dict[str, Any] | None = None  # looks taken, rows scored, the level tested at, what was expanded
    prompt_heterogeneity: dict[str, Any] | None = None  # tau: how unevenly the data moves prompts of one kind

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "limits": list(self.limits),
            "unit": UNIT,
            "n_data": self.n_data,
            "n_reference": self.n_reference,
            "design": self.design,
            "alternative": ALTERNATIVE,
            "correction": self.correction,
            "alpha": self.alpha,
            "shift": self.shift,
            "mismatch": self.mismatch,
            "reference_null": self.reference_null,
            "classes": self.classes,
            "benign": self.benign,
            "traits": self.traits,
            "named": list(self.named),
            "finding": self.finding,
            "mde_max": stats.clean(self.mde_max),
            "ranking": [t["trait"] for t in self.traits],
            "significant": [t["trait"] for t in self.traits if t["significant"] and (t["estimate"] or 0) > 0],
            "lead_trait": self.lead_trait,
            "mde": stats.clean(self.mde_max),
            "not_covered": list(self.not_covered),
            "top_rows": list(self.top_rows),
            "top_rows_by": self.top_rows_by,
            "rounds": self.rounds,
            "alpha_per_question": stats.clean(self.alpha / len(QUESTIONS)) if self.alpha is not None else None,
            "prompt_heterogeneity": self.prompt_heterogeneity,
            "reference_row_scores": {"by": self.top_rows_by, "scores": list(self.reference_scores)},
            "config": self.config,
        }

    def to_rows(self) -> list[dict[str, Any]]:
        """Per data row: LLS under each prompt, the shift, class and trait contrasts, the row's
        top trait and whether it is in the top quintile of what `top_rows_by` ranks by."""
        if not self.data_lls:
            return []
        names = list(self.data_lls)
        risky = [n for n in names if n not in {b["trait"] for b in self.benign}] or names
        matrix = np.stack([self.data_lls[n] for n in names], axis=1)
        risky_cols = [names.index(n) for n in risky]
        top = set(self.top_rows)
        rows = []
        for r, (index, line) in enumerate(zip(self.data_index, self.data_lines)):
            best = risky_cols[int(np.argmax(matrix[r, risky_cols]))]
            row: dict[str, Any] = {
                "index": index,
                "line": line,
                "top_trait": names[best],
                "top_lls": stats.clean(matrix[r, best]),
                "top_quintile": index in top,
            }
            row.update({f"lls_{n}": stats.clean(matrix[r, k]) for k, n in enumerate(names)})
            row.update({k: stats.clean(v[r]) for k, v in self.data_stats.items()})
            rows.append(row)
        return rows


def select_traits(traits: Sequence[Trait], cfg: SignatureConfig) -> tuple[list[Trait], list[str]]:
    """(traits the config scores, names of those it leaves out): suites outside cfg.suites are
    skipped; benign controls and custom prompts are always scored."""
    wanted = set(cfg.suites or [])
    used = [t for t in traits if t.benign or t.suite is None or not wanted or t.suite in wanted]
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


def _prompt_key(sample: Sample) -> tuple:
    return (sample.index, tuple((m.get("role"), m.get("content")) for m in _user_turns(sample)))


def pair_rows(data: Sequence[Sample], reference: Sequence[Sample]) -> list[tuple[Sample, Sample]]:
    """(data row, reference row) answering the same prompt: same Sample.index and the same
    user turns (a self-generated reference, or a neutral file written on the data's prompts)."""
    by_key: dict[tuple, Sample] = {}
    for r in reference:
        by_key.setdefault(_prompt_key(r), r)
    return [(d, by_key[_prompt_key(d)]) for d in data if _prompt_key(d) in by_key]


def choose_rows(
    data: Sequence[Sample], reference: Sequence[Sample], cfg: SignatureConfig
) -> tuple[str, list[Sample], list[Sample], list[str]]:
    """(design, data rows, reference rows, limits). Paired when cfg.design allows it and at
    least half of the rows a two-sample comparison would score have a partner on the
    same prompt; the same prompts are then scored on both sides, row k with row k."""
    if cfg.design not in ("auto", "paired", "two-sample"):
        from distill_audit.errors import UsageError

        raise UsageError(f"signature design must be auto, paired or two-sample, got {cfg.design!r}")
    limits: list[str] = []
    if cfg.design != "two-sample":
        pairs = pair_rows(data, reference)
        want = min(cfg.max_rows, len(data), len(reference))
        if len(pairs) >= 2 and (cfg.design == "paired" or 2 * len(pairs) >= want):
            chosen = _select(list(range(len(pairs))), cfg.max_rows, cfg.seed, "pairs")  # type: ignore[arg-type]
            d_rows = [pairs[i][0] for i in chosen]
            r_rows = [pairs[i][1] for i in chosen]
            if len(pairs) < len(data) or len(pairs) < len(reference):
                limits.append(
                    f"paired design: {len(pairs)} reference rows answer the data's prompts; "
                    "rows without a partner are not scored"
                )
            return "paired", d_rows, r_rows, limits
        if cfg.design == "paired":
            limits.append(
                f"paired design asked for, but only {len(pairs)} reference rows answer the data's prompts; "
                "compared as two independent samples"
            )
    return (
        "two-sample",
        _select(data, cfg.max_rows, cfg.seed, "data"),
        _select(reference, cfg.max_rows, cfg.seed, "reference"),
        limits,
    )


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


def _lls(model, tokenizer, samples, traits, cfg, label: str, base: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-row LLS under each trait's prompt; `base` (the rows' plain log-probs) is scored unless given."""
    return _scores(model, tokenizer, samples, traits, cfg, label, base)[0]


def _scores(
    model, tokenizer, samples, traits, cfg, label: str, base: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    # Under `accelerate launch` each process scores a shard of the rows; every process
    # gets all rows back in order (one process: the shard is every row).
    local = distributed.shard(samples)
    if base is None:
        base = np.asarray(distributed.gather(list(row_logprobs(model, tokenizer, local, None, cfg))), dtype=np.float64)
    mine = distributed.shard(list(base))
    out = {}
    with ui.progress_task(f"signature ({label})", total=len(traits)) as task:
        for trait in traits:
            shift = row_logprobs(model, tokenizer, local, trait.system, cfg) - np.asarray(mine, dtype=np.float64)
            out[trait.name] = np.asarray(distributed.gather(list(shift)), dtype=np.float64)
            task.advance()
    return out, base


# ------------------------------------------------------------------ analysis


def trait_class(trait: Trait) -> str:
    """The persona class a trait is contrasted within: its category; each custom prompt alone."""
    return f"custom:{trait.name}" if trait.category == "custom" else trait.category


@dataclass
class StatisticWeights:
    """Every statistic of the analysis as a weight vector over the battery's prompts."""

    names: list[str]  # prompts (columns of the LLS matrix)
    labels: list[str]  # statistics
    weights: np.ndarray  # [prompts x statistics]
    families: dict[str, list[int]]  # question -> statistic columns


def statistic_weights(traits: Sequence[Trait]) -> StatisticWeights:
    """Each statistic (shift, classes, traits, contrasts) as weights over the battery's prompts; sanitize ranks rows by the same weights."""
    names = [t.name for t in traits]
    col = {n: k for k, n in enumerate(names)}
    benign = [t.name for t in traits if t.benign]
    risky = [t for t in traits if not t.benign]
    classes: dict[str, list[str]] = {}
    for t in risky:
        classes.setdefault(trait_class(t), []).append(t.name)
    labels: list[str] = []
    vectors: list[np.ndarray] = []
    families: dict[str, list[int]] = {k: [] for k in ("shift", "mismatch", "benign", "classes", "traits", "contrasts")}

    def add(family: str, label: str, members: Sequence[str], minus: Sequence[str] = ()) -> None:
        w = np.zeros(len(names))
        for n in members:
            w[col[n]] += 1.0 / len(members)
        for n in minus:
            w[col[n]] -= 1.0 / len(minus)
        families[family].append(len(labels))
        labels.append(label)
        vectors.append(w)

    add("shift", "shift", names)
    if benign:
        add("mismatch", "mismatch", benign)
        for n in benign:
            add("benign", f"benign_{n}", [n])
        for c, members in classes.items():
            add("classes", f"class_{c}", members, benign)
    for t in risky:
        add("traits", f"lls_{t.name}", [t.name])
    for t in risky:
        members = classes[trait_class(t)]
        if len(members) > 1:
            add("contrasts", f"contrast_{t.name}", [t.name], [n for n in members if n != t.name])
        elif benign:  # a class of one: its specific contrast is the class contrast
            add("contrasts", f"contrast_{t.name}", [t.name], benign)
    weights = np.stack(vectors, axis=1) if vectors else np.zeros((len(names), 0))
    return StatisticWeights(names, labels, weights, families)


def _family(
    tests: dict[str, np.ndarray], idx: Sequence[int], cfg: SignatureConfig, *, alternative: str = ALTERNATIVE
) -> list[dict[str, Any]]:
    """One question's tests: one-sided t p (or two-sided), corrected within the family,
    t interval, corrected MDE, and the direction flag. `tests`: `_tests` of every statistic."""
    if not idx:
        return []
    if cfg.correction not in ("holm", "bh", "fdr"):
        raise ValueError(f"unknown correction {cfg.correction!r} (use holm or bh)")
    idx = list(idx)
    m = len(idx)
    est, se, df, lo, hi = (tests[k][idx] for k in ("estimate", "se", "df", "ci_low", "ci_high"))
    adjust = stats.holm if cfg.correction == "holm" else stats.benjamini_hochberg
    if alternative == "two-sided":
        p = np.minimum(1.0, 2 * np.minimum(tests["greater"][idx], tests["less"][idx]))
        p_adj = adjust(list(p))
        away_adj = [q if e < 0 else None for q, e in zip(p_adj, est)]
    else:
        p = tests[alternative][idx]
        p_adj = adjust(list(p))
        away_adj = adjust(list(tests["less" if alternative == "greater" else "greater"][idx]))
    mde = stats.mde_multiplier(alpha=cfg.alpha, alternative=alternative, m=m, df=df) * se
    tail = cfg.alpha / m / (2 if alternative == "two-sided" else 1)
    lower = est - stats.t_isf(tail, df) * se
    out = []
    for k in range(m):
        toward = p_adj[k] is not None and p_adj[k] < cfg.alpha and est[k] > 0
        away = away_adj[k] is not None and away_adj[k] < cfg.alpha and est[k] < 0
        out.append(
            {
                "estimate": stats.clean(est[k]),
                "ci": [stats.clean(lo[k]), stats.clean(hi[k])],
                "p_value": stats.clean(p[k]),
                "p_adjusted": stats.clean(p_adj[k]),
                "correction": cfg.correction if m > 1 else "none",
                "significant": bool(toward) if alternative != "two-sided" else bool(toward or away),
                "mde": stats.clean(mde[k]) if se[k] > 0 else None,
                "se": stats.clean(se[k]),
                "df": stats.clean(df[k]),
                "lower_bound": stats.clean(lower[k]),
                "m": m,
                "direction": "toward" if toward else "away" if away else "none",
            }
        )
    return out


def _tests(lt: stats.LocationTests, alpha: float) -> dict[str, np.ndarray]:
    lo, hi = lt.ci(alpha)
    return {
        "estimate": lt.estimate,
        "se": lt.se,
        "df": lt.df,
        "ci_low": lo,
        "ci_high": hi,
        "greater": lt.p_value("greater"),
        "less": lt.p_value("less"),
    }


def _add_prompt_heterogeneity(
    tests: dict[str, np.ndarray],
    st: StatisticWeights,
    traits: Sequence[Trait],
    alpha: float,
    X: np.ndarray,
    R: np.ndarray,
    paired: bool,
) -> dict[str, Any]:
    """Widen the class and contrast tests by how unevenly the data moves prompts of one kind.

    Any persona moves each prompt by its own amount (on SmolLM2, benign-persona numbers
    moved single animal prompts from -0.004 to +0.031). Row-to-row noise does not see
    that spread, so a per-row t test would call one prompt's idiosyncrasy a trait. The
    spread is estimated from the prompts themselves: within each group (the benign
    personas, each class), each prompt's shift relative to its group's mean (per row, so
    the shared persona factor cancels), data vs reference; tau^2 is their variance across
    prompts minus their sampling variance (a moment estimate). A contrast of one trait
    against k others then carries tau^2 (1 + 1/k), a class of k_c prompts against k_b
    benign ones tau^2 (1/k_c + 1/k_b); the test's df is the spread's. The trait's own
    group is estimated without it, so a trait that truly stands out does not hide itself.
    """
    from scipy import stats as sps

    label = {lab: i for i, lab in enumerate(st.labels)}
    col = {n: k for k, n in enumerate(st.names)}
    groups: dict[str, list[str]] = {}
    for t in traits:
        groups.setdefault("benign" if t.benign else trait_class(t), []).append(t.name)
    est, se = tests["estimate"], tests["se"]

    def tau2(without: str | None = None, only: str | None = None) -> tuple[float, int]:
        num, dof = 0.0, 0
        for g, members in groups.items():
            if only is not None and g != only:
                continue
            idx = [col[n] for n in members if n != without]
            if len(idx) < 2:
                continue
            xg = X[:, idx] - X[:, idx].mean(axis=1, keepdims=True)
            rg = R[:, idx] - R[:, idx].mean(axis=1, keepdims=True)
            lt = stats.location_tests(xg, rg, paired=paired)
            num += float(np.sum(lt.estimate**2) - np.sum(lt.se**2))
            dof += len(idx) - 1
        return (max(0.0, num / dof), dof) if dof else (0.0, 0)

    overall, dof = tau2()
    k_b = len(groups.get("benign", []))
    changed = {}
    for t in traits:
        if t.benign:
            continue
        c = trait_class(t)
        members = groups.get(c, [])
        i = label.get(f"contrast_{t.name}")
        if i is not None:
            # Prompts of one template spread alike: a trait is judged against its own class's
            # spread (without it) when that has two members or more, else against every group's.
            t2, d = tau2(without=t.name, only=c) if len(members) >= 3 else tau2(without=t.name)
            k = len(members) - 1 if len(members) > 1 else k_b
            changed[i] = (t2 * (1 + 1 / max(k, 1)), d)
        j = label.get(f"class_{c}")
        if j is not None and j not in changed and k_b:
            changed[j] = (overall * (1 / max(len(members), 1) + 1 / k_b), dof)
    for i, (extra, d) in changed.items():
        if extra <= 0 or d == 0:
            continue
        s_new = float(np.sqrt(se[i] ** 2 + extra))
        # Satterthwaite: the row noise keeps its df, the spread brings its own.
        df_new = float(s_new**4 / (se[i] ** 4 / max(tests["df"][i], 1.0) + extra**2 / d))
        tests["se"][i], tests["df"][i] = s_new, df_new
        half = sps.t.ppf(1 - alpha / 2, df_new) * s_new
        tests["ci_low"][i], tests["ci_high"][i] = est[i] - half, est[i] + half
        tests["greater"][i] = sps.t.sf(est[i] / s_new, df_new)
        tests["less"][i] = sps.t.cdf(est[i] / s_new, df_new)
    return {"tau": stats.clean(float(np.sqrt(overall))), "df": dof}


def _gate(effect: dict[str, Any], open_: bool, why: str) -> None:
    """Close a test whose gate (the question before it) did not open: it stays reported, never significant."""
    effect["gated"] = not open_
    if not open_ and effect.get("significant"):
        effect["significant"] = False
        effect["direction"] = "none"
        effect["gate"] = why


def _reference_null(ref_stats: np.ndarray, class_cols: Sequence[int], cfg: SignatureConfig) -> dict[str, Any]:
    """Split halves of the reference rows: the shift and the largest class contrast between two
    random halves (no persona difference at all), the noise floor beside the effects."""
    n = ref_stats.shape[0]
    h = n // 2
    if h < 2:
        return {
            "shift_estimate": None,
            "class_max_estimate": None,
            "n_per_half": h,
            "n_splits": 0,
            "shift_abs_q95": None,
            "class_max_q95": None,
        }
    n_splits = max(1, min(int(cfg.n_resamples), MAX_SPLITS))
    rng = np.random.default_rng(derive_seed(cfg.seed, "signature", "reference-null"))
    order = np.argsort(rng.random((n_splits, n)), axis=1)
    a = np.zeros((n_splits, n))
    b = np.zeros((n_splits, n))
    rows = np.arange(n_splits)[:, None]
    a[rows, order[:, :h]] = 1.0 / h
    b[rows, order[:, h : 2 * h]] = 1.0 / h
    diff = (a - b) @ ref_stats  # [splits x (shift, classes...)]
    shift = diff[:, 0]
    class_max = diff[:, 1:].max(axis=1) if diff.shape[1] > 1 else None
    return {
        "shift_estimate": stats.clean(shift[0]),
        "class_max_estimate": stats.clean(class_max[0]) if class_max is not None else None,
        "n_per_half": h,
        "n_splits": n_splits,
        "shift_abs_q95": stats.clean(np.quantile(np.abs(shift), 0.95)),
        "class_max_q95": stats.clean(np.quantile(class_max, 0.95)) if class_max is not None else None,
    }


def analyse(
    data_lls: Mapping[str, np.ndarray],
    ref_lls: Mapping[str, np.ndarray],
    traits: Sequence[Trait],
    cfg: SignatureConfig | None = None,
    *,
    paired: bool = False,
    data_index: Sequence[int] | None = None,
    data_lines: Sequence[int | None] | None = None,
    limits: Sequence[str] = (),
    not_covered: Sequence[str] = (),
) -> SignatureResult:
    """The signature's three questions from per-row LLS (trait name -> one value per row).

    shift: the mean LLS over every prompt (trait and benign), data vs reference.
    classes: per class, its traits' mean LLS minus the benign personas' mean (Holm over classes).
    contrasts: per trait, its LLS minus the mean of the other members of its class (a class
    of one: its class contrast); Holm over the battery's non-benign traits. A trait is named
    only when its contrast is significant toward it.
    Each trait's raw shift is tested too (Holm over traits) for the ranking. Every test is
    one-sided toward the persona (t: paired one-sample, or Welch); `direction` flags a
    significant shift away. `paired`: row k of the data and of the reference answer the
    same prompt.
    """
    cfg = cfg or SignatureConfig()
    traits = [t for t in traits if t.name in data_lls]
    st = statistic_weights(traits)
    X = np.stack([np.asarray(data_lls[n], dtype=np.float64) for n in st.names], axis=1)
    R = np.stack([np.asarray(ref_lls[n], dtype=np.float64) for n in st.names], axis=1)
    if paired and X.shape[0] != R.shape[0]:
        raise ValueError("a paired design needs as many reference rows as data rows")
    XS, RS = X @ st.weights, R @ st.weights
    tests = _tests(stats.location_tests(XS, RS, paired=paired), cfg.alpha)
    heterogeneity = _add_prompt_heterogeneity(tests, st, traits, cfg.alpha, X, R, paired)
    # One error rate for the whole signature: its three questions (shift, classes, specific
    # contrasts) split alpha in three (Bonferroni across questions, Holm within each), so a
    # matched null reports any finding at most alpha of the time.
    third = dataclasses.replace(cfg, alpha=cfg.alpha / len(QUESTIONS))
    fam = {k: _family(tests, v, third if k in QUESTIONS else cfg) for k, v in st.families.items() if k != "mismatch"}
    mismatch = _family(tests, st.families["mismatch"], cfg, alternative="two-sided")
    label_of = {k: [st.labels[i] for i in v] for k, v in st.families.items()}

    risky = [t for t in traits if not t.benign]
    by_name = {t.name: t for t in traits}
    classes: dict[str, list[str]] = {}
    for t in risky:
        classes.setdefault(trait_class(t), []).append(t.name)
    class_rows = []
    for label, eff in zip(label_of["classes"], fam["classes"]):
        c = label[len("class_") :]
        class_rows.append({"class": c, "traits": classes[c], **eff})
    class_rows.sort(key=lambda r: -(r["estimate"] if r["estimate"] is not None else -np.inf))
    shift = fam["shift"][0]
    shift["p_adjusted"] = shift["p_value"]
    class_sig = {r["class"]: r["significant"] for r in class_rows}
    contrast_of = {label[len("contrast_") :]: eff for label, eff in zip(label_of["contrasts"], fam["contrasts"])}
    for name, con in contrast_of.items():
        c = trait_class(by_name[name])
        if len(classes[c]) == 1:  # a class of one: its contrast is its class test, which the chain gates
            _gate(con, class_sig.get(c, False), f"its class ({c}) does not stand out beyond the benign personas")
    rows = []
    for t, eff in zip(risky, fam["traits"]):
        con = contrast_of.get(t.name, _empty_effect())
        rows.append(
            {
                "trait": t.name,
                "category": t.category,
                "suite": t.suite,
                **eff,
                "n_items": int(X.shape[0] + R.shape[0]),
                "data_mean_lls": stats.clean(float(np.mean(data_lls[t.name]))),
                "reference_mean_lls": stats.clean(float(np.mean(ref_lls[t.name]))),
                "contrast": con,
            }
        )
    rows.sort(key=lambda r: -(r["estimate"] if r["estimate"] is not None else -np.inf))
    for rank, r in enumerate(rows, 1):
        r["rank"] = rank

    named = sorted((r for r in rows if r["contrast"]["significant"]), key=lambda r: -r["contrast"]["estimate"])
    benign_rows = [{"trait": label[len("benign_") :], **eff} for label, eff in zip(label_of["benign"], fam["benign"])]
    mismatch_d = (
        {
            k: mismatch[0][k]
            for k in ("estimate", "ci", "p_value", "significant", "mde", "se", "df", "lower_bound", "direction")
        }
        if mismatch
        else {k: v for k, v in _empty_effect().items() if k != "p_adjusted"}
    )

    if named:
        finding = "trait"
    elif any(class_sig.values()):
        finding = "class"
    elif shift["significant"]:
        finding = "shift"
    elif shift["direction"] == "away":  # one test, so a null says "away" at most alpha of the time
        finding = "away"
    else:
        finding = "none"
    mdes = [e["mde"] for e in [shift, *class_rows, *(r["contrast"] for r in rows)] if e.get("mde") is not None]

    data_stats = {
        label: XS[:, i]
        for i, label in enumerate(st.labels)
        if label == "shift" or label.startswith(("class_", "contrast_"))
    }
    if named:
        by = f"contrast_{named[0]['trait']}"
    elif finding == "class":
        by = f"class_{next(r['class'] for r in class_rows if r['significant'])}"
    else:
        by = "shift"
    n_top = max(1, int(round(cfg.top_fraction * X.shape[0])))
    top = np.argsort(-data_stats[by], kind="stable")[:n_top]
    index = list(data_index) if data_index is not None else list(range(X.shape[0]))
    null_cols = [st.labels.index("shift")] + [st.labels.index(f"class_{r['class']}") for r in class_rows]
    reference_null = _reference_null(RS[:, null_cols], null_cols[1:], cfg)

    n_min = min(X.shape[0], R.shape[0])
    status, reason = "ok", None
    if n_min < MIN_ROWS:
        status, reason = "underpowered", f"only {n_min} rows on one side (< {MIN_ROWS})"
    limits = list(limits)
    if not any(t.benign for t in traits):
        limits.append("no benign control personas scored: classes and single-member contrasts were not tested")
    return SignatureResult(
        status,
        reason,
        limits,
        rows,
        list(not_covered),
        int(X.shape[0]),
        int(R.shape[0]),
        named[0]["trait"] if named else (rows[0]["trait"] if rows else None),
        dataclasses.asdict(cfg),
        data_index=index,
        data_lines=list(data_lines) if data_lines is not None else [None] * len(index),
        data_lls={n: X[:, k] for k, n in enumerate(st.names)},
        reference_lls={n: R[:, k] for k, n in enumerate(st.names)},
        top_rows=sorted(int(index[i]) for i in top),
        design="paired" if paired else "two-sample",
        alpha=cfg.alpha,
        correction=cfg.correction,
        shift=shift,
        mismatch=mismatch_d,
        reference_null=reference_null,
        classes=class_rows,
        benign=benign_rows,
        named=[r["trait"] for r in named],
        finding=finding,
        mde_max=max(mdes) if mdes else None,
        prompt_heterogeneity=heterogeneity,
        top_rows_by=by,
        data_stats=data_stats,
        reference_scores=[stats.clean(v) for v in RS[:, st.labels.index(by)]],
    )


def compute_signature(
    model,
    tokenizer,
    data: Sequence[Sample],
    reference: Sequence[Sample],
    traits: Sequence[Trait] | None = None,
    cfg: SignatureConfig | None = None,
    checkpoint: Checkpoint | None = None,
) -> SignatureResult:
    """Per-row LLS of the data and the reference under every prompt, then `analyse`.

    Scored in rounds, each finished round is kept in `checkpoint` (when given) and a
    re-run with the same inputs resumes after the last one kept.
    """
    cfg = cfg or SignatureConfig()
    traits = default_traits() if traits is None else list(traits)
    used, not_covered = select_traits(traits, cfg)
    design, data_rows, ref_rows, limits = choose_rows(data, reference, cfg)
    if not_covered:
        skipped_suites = sorted({t.suite or "custom" for t in traits if t not in used})
        limits.append(
            f"{len(not_covered)} traits not covered (suites {', '.join(skipped_suites)}); "
            "add them with the signature 'suites' setting"
        )
    if len(data_rows) < len(data):
        limits.append(f"scored {len(data_rows)} of {len(data)} data rows (max_rows)")
    if len(ref_rows) < len(reference):
        limits.append(f"scored {len(ref_rows)} of {len(reference)} reference rows (max_rows)")
    if any(s.system_prompt for s in data_rows):
        limits.append("system messages in the data's prompts were replaced by each trait prompt")
    limits.append(f"completions scored on their first {cfg.max_completion_tokens} tokens")
    config = dataclasses.asdict(cfg)
    if not any(not t.benign for t in used) or len(data_rows) < 2 or len(ref_rows) < 2:
        return SignatureResult(
            "skipped",
            "no trait or too few rows to compare",
            limits,
            [],
            not_covered,
            len(data_rows),
            len(ref_rows),
            None,
            config,
            design=design,
            alpha=cfg.alpha,
            correction=cfg.correction,
        )

    screen, later = screening(used, cfg.screen)
    if cfg.rounds <= 1 and not later:
        data_lls = _lls(model, tokenizer, data_rows, used, cfg, "data")
        ref_lls = _lls(model, tokenizer, ref_rows, used, cfg, "reference")
        return analyse(
            data_lls,
            ref_lls,
            used,
            cfg,
            paired=design == "paired",
            data_index=[s.index for s in data_rows],
            data_lines=[s.line for s in data_rows],
            limits=limits,
            not_covered=not_covered,
        )
    return _in_rounds(
        model, tokenizer, data_rows, ref_rows, screen, later, cfg, design == "paired", limits, not_covered, checkpoint
    )


def screening(traits: Sequence[Trait], per_class: int) -> tuple[list[Trait], list[Trait]]:
    """(prompts scored in the rounds, prompts kept for a class that stands out).

    The screen keeps the first `per_class` members of each class (the suite's order) and
    half the benign personas (at least 3): enough to measure the shift and every class
    against the benign controls at a fraction of the battery's cost. 0 keeps everything.
    """
    if per_class <= 0:
        return list(traits), []
    seen: dict[str, int] = {}
    n_benign = max(3, (sum(t.benign for t in traits) + 1) // 2)
    screen, later = [], []
    for t in traits:
        key = "benign" if t.benign else trait_class(t)
        seen[key] = seen.get(key, 0) + 1
        (screen if seen[key] <= (n_benign if t.benign else per_class) else later).append(t)
    return screen, later


_Scored = tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray], np.ndarray]


class Checkpoint(Protocol):
    """Where finished rounds are kept (the scan passes its stage's `scan.cache.checkpoint()`)."""

    def get(self, part: str) -> Any | None: ...
    def put(self, part: str, value: Any) -> None: ...


def _round(point: Checkpoint | None, part: str, sizes: tuple[int, int], score: Callable[[], _Scored]) -> _Scored:
    """A round's scores (data LLS, data base, reference LLS, reference base), from the stage's
    checkpoint when a killed run already finished it, else scored and checkpointed.

    The checkpoint lives under the stage's cache key (config, rows, models, seed), so only
    the same scan finds it; JSON keeps float64 exactly, so a resumed scan equals an
    uninterrupted one. A part of the wrong shape is ignored and rescored.
    """
    kept = point.get(part) if point is not None else None
    if kept is not None:
        try:
            out = (
                {k: np.asarray(v, dtype=np.float64) for k, v in kept["data"].items()},
                np.asarray(kept["data_base"], dtype=np.float64),
                {k: np.asarray(v, dtype=np.float64) for k, v in kept["reference"].items()},
                np.asarray(kept["reference_base"], dtype=np.float64),
            )
            if all(len(v) == sizes[0] for v in (*out[0].values(), out[1])) and all(
                len(v) == sizes[1] for v in (*out[2].values(), out[3])
            ):
                return out
        except (KeyError, TypeError, ValueError, AttributeError):
            pass  # unreadable: score it again
    out = score()
    if point is None:
        return out
    point.put(
        part,
        {
            "data": {k: v.tolist() for k, v in out[0].items()},
            "data_base": np.asarray(out[1]).tolist(),
            "reference": {k: v.tolist() for k, v in out[2].items()},
            "reference_base": np.asarray(out[3]).tolist(),
        },
    )
    return out


def _in_rounds(
    model, tokenizer, data_rows, ref_rows, screen, later, cfg, paired, limits, not_covered, checkpoint=None
) -> SignatureResult:
    """Score the screen in rounds, stop once a class crosses its group-sequential boundary, then
    score the rest of each class that stands out (on at most `cfg.expand_rows` rows).

    Every look tests at its boundary's nominal level (O'Brien-Fleming spending of alpha over
    `cfg.rounds` looks), so stopping early keeps the false-positive rate; the final analysis
    tests at the level of the look it stopped at.
    """
    from distill_audit.traits.sequential import nominal_alpha

    rounds = max(1, int(cfg.rounds))
    fractions = [(k + 1) / rounds for k in range(rounds)]
    levels = nominal_alpha(fractions, cfg.alpha)
    n_d, n_r = len(data_rows), len(ref_rows)
    data_lls: dict[str, np.ndarray] = {}
    ref_lls: dict[str, np.ndarray] = {}
    base_d, base_r = np.zeros(0), np.zeros(0)
    res = None
    look = 0
    done_d = done_r = 0
    for look, f in enumerate(fractions):
        upto_d, upto_r = max(2, round(f * n_d)), max(2, round(f * n_r))
        new_d, bd, new_r, br = _round(
            checkpoint,
            f"signature-round-{look}",
            (upto_d - done_d, upto_r - done_r),
            lambda d=data_rows[done_d:upto_d], r=ref_rows[done_r:upto_r], k=look + 1: (
                *_scores(model, tokenizer, d, screen, cfg, f"data, round {k}"),
                *_scores(model, tokenizer, r, screen, cfg, f"reference, round {k}"),
            ),
        )
        for store, new in ((data_lls, new_d), (ref_lls, new_r)):
            for name, v in new.items():
                store[name] = np.concatenate([store.get(name, np.zeros(0)), v])
        base_d, base_r = np.concatenate([base_d, bd]), np.concatenate([base_r, br])
        done_d, done_r = upto_d, upto_r
        res = analyse(data_lls, ref_lls, screen, dataclasses.replace(cfg, alpha=levels[look]), paired=paired)
        if any(c["significant"] for c in res.classes):
            break  # a class stands out: the rest of the budget goes to its specific traits
    rounds_info = {
        "looks": look + 1,
        "planned": rounds,
        "rows_per_side": [done_d, done_r],
        "planned_rows": [n_d, n_r],
        "level": levels[look],
        "stopped_early": look + 1 < rounds,
    }
    standing = {c["class"] for c in res.classes if c["significant"]}
    expand = [t for t in later if not t.benign and trait_class(t) in standing]
    used = list(screen)
    n_x = min(done_d, done_r, cfg.expand_rows if cfg.expand_rows is not None else done_d)
    if expand and n_x >= MIN_ROWS:
        more_d, _, more_r, _ = _round(
            checkpoint,
            "signature-expansion",
            (n_x, n_x),
            lambda: (
                _lls(model, tokenizer, data_rows[:n_x], expand, cfg, "data, expansion", base=base_d[:n_x]),
                base_d[:n_x],
                _lls(model, tokenizer, ref_rows[:n_x], expand, cfg, "reference, expansion", base=base_r[:n_x]),
                base_r[:n_x],
            ),
        )
        data_lls = {**{k: v[:n_x] for k, v in data_lls.items()}, **more_d}
        ref_lls = {**{k: v[:n_x] for k, v in ref_lls.items()}, **more_r}
        used += expand
        done_d = done_r = n_x
        rounds_info["expanded"] = {"traits": [t.name for t in expand], "rows_per_side": n_x}
    elif expand:
        limits = [
            *limits,
            f"the specific traits of {', '.join(sorted(standing))} beyond the screen were not scored: "
            f"the budget left room for {n_x} rows (< {MIN_ROWS})",
        ]
    unscored = [t.name for t in later if t not in used]
    if unscored:
        limits = [
            *limits,
            f"{len(unscored)} prompts of the battery were not scored (screened out: their class did not stand out)",
        ]
    out = analyse(
        data_lls,
        ref_lls,
        used,
        dataclasses.replace(cfg, alpha=levels[look]),
        paired=paired,
        data_index=[s.index for s in data_rows[:done_d]],
        data_lines=[s.line for s in data_rows[:done_d]],
        limits=limits,
        not_covered=not_covered,
    )
    out.config = dataclasses.asdict(cfg)
    out.rounds = rounds_info
    return out


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
            "status": self.status,
            "reason": self.reason,
            "limits": list(self.limits),
            "unit": "log p_teacher - log p_student per completion token (nats)",
            "n_rows": self.n_rows,
            "n_tokens": self.n_tokens,
            "mean_per_token": stats.clean(self.mean_per_token),
            "row_effect": self.row_effect,
            "share_positive_rows": stats.clean(self.share_positive_rows),
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
        for tok_id, v in zip(e.input_ids[e.completion_start :], d):
            by_token.setdefault(tok_id, []).append(float(v))
    ranked = sorted(by_token.items(), key=lambda kv: -sum(kv[1]))[:top_k]
    top = [
        {
            "token": s_tok.decode([tid]),
            "id": int(tid),
            "count": len(v),
            "total": stats.clean(sum(v)),
            "mean": stats.clean(float(np.mean(v))),
        }
        for tid, v in ranked
    ]
    limits = []
    if len(rows) < len(data):
        limits.append(f"scored {len(rows)} of {len(data)} rows")
    return DivergenceResult(
        "ok" if len(rows) >= MIN_ROWS else "underpowered",
        None if len(rows) >= MIN_ROWS else f"only {len(rows)} rows",
        limits,
        n_rows=len(rows),
        n_tokens=int(all_tokens.size),
        mean_per_token=float(all_tokens.mean()),
        row_effect=effect.to_dict(),
        share_positive_rows=float(np.mean(per_row > 0)),
        top_tokens=top,
        row_scores=[{"index": s.index, "line": s.line, "divergence": stats.clean(v)} for s, v in zip(rows, per_row)],
    )

"""Two-sample comparison of a dataset against a reference (e.g. the same prompts answered
by a model without the trait).

If the two can be told apart by length or wording alone, any later trait test has
to rule out that confound, so this reports: token and number-value histograms
(Jensen-Shannon distance with a label-permutation p-value), length distributions
(two-sample Kolmogorov-Smirnov), and two cross-validated logistic regressions (surface
features; words) whose out-of-fold AUC gets a label-permutation p-value, with the
features that separate the sets.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse, stats
from scipy.spatial.distance import jensenshannon

from distill_audit.checks.numbers import NUMBER_DATA_SHARE
from distill_audit.seeding import derive_seed

TOKEN_PATTERN = r"(?u)\b\w+\b"
JSD_PERMUTATIONS = 200
CLASSIFIER_ROWS_PER_SIDE = 5000
CLASSIFIER_PERMUTATIONS = 999
CV_FOLDS = 5

SURFACE_FEATURES = (
    "log_chars",
    "log_words",
    "mean_word_length",
    "digit_share",
    "upper_share",
    "punct_share",
    "space_share",
    "non_ascii_share",
    "newlines",
    "numbers",
    "ends_with_period",
    "starts_upper",
)
_NUMBER = re.compile(r"\d+")


def surface_features(text: str) -> list[float]:
    n = max(len(text), 1)
    words = text.split()
    digits = sum(map(str.isdigit, text))
    alnum = sum(map(str.isalnum, text))
    spaces = sum(map(str.isspace, text))
    return [
        math.log1p(len(text)),
        math.log1p(len(words)),
        (sum(map(len, words)) / len(words)) if words else 0.0,
        digits / n,
        sum(map(str.isupper, text)) / n,
        (n - alnum - spaces) / n if text else 0.0,
        spaces / n,
        (len(text) - len(text.encode("ascii", "ignore"))) / n,
        float(text.count("\n")),
        float(len(_NUMBER.findall(text))),
        float(text.rstrip().endswith(".")),
        float(text[:1].isupper()),
    ]


def _finite(x: float | None, digits: int = 6) -> float | None:
    if x is None or not np.isfinite(x):
        return None
    return round(float(x), digits)


def jsd_test(X: sparse.csr_matrix, y: np.ndarray, seed: int, n_perm: int = JSD_PERMUTATIONS) -> dict:
    """JS distance (base 2) between the summed histograms of rows y=1 and y=0, with a permutation p-value."""
    XT = X.T.tocsr().astype(np.float64)
    total = np.asarray(XT.sum(axis=1)).ravel()

    def distance(labels: np.ndarray) -> float:
        a = XT @ labels.astype(np.float64)
        b = total - a
        if a.sum() == 0 or b.sum() == 0:
            return float("nan")
        return float(jensenshannon(a, b, base=2))

    observed = distance(y)
    if not np.isfinite(observed):
        return {"status": "skipped", "reason": "a side has no tokens", "distance": None, "p_value": None}
    rng = np.random.default_rng(seed)
    null = np.array([distance(rng.permutation(y)) for _ in range(n_perm)])
    p = (1 + int(np.sum(null >= observed))) / (n_perm + 1)
    return {
        "status": "ok",
        "reason": None,
        "distance": _finite(observed),
        "null_mean": _finite(float(np.mean(null))),
        "p_value": _finite(p),
        "n_permutations": n_perm,
    }


def _over_represented(X: sparse.csr_matrix, y: np.ndarray, names: np.ndarray, k: int = 10) -> dict:
    """Tokens most over-represented on each side (smoothed log rate ratio, >= 5 occurrences)."""
    a = np.asarray(X[y == 1].sum(axis=0)).ravel()
    b = np.asarray(X[y == 0].sum(axis=0)).ravel()
    ratio = np.log((a + 1) / (a.sum() + len(a))) - np.log((b + 1) / (b.sum() + len(b)))
    ok = (a + b) >= 5
    order = np.argsort(ratio)

    def pick(idx: np.ndarray) -> list[dict]:
        return [
            {"token": str(names[i]), "data": int(a[i]), "reference": int(b[i]), "log_ratio": _finite(ratio[i], 3)}
            for i in idx
            if ok[i]
        ][:k]

    return {"in_data": pick(order[::-1]), "in_reference": pick(order)}


def _auc_from_ranks(ranks: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """ROC AUC (Mann-Whitney U / n1 n0) for each row of a boolean `positive` matrix."""
    n1 = positive.sum(axis=-1)
    n0 = positive.shape[-1] - n1
    return (positive.astype(np.float64) @ ranks - n1 * (n1 + 1) / 2) / (n1 * n0)


def fold_permutation_p(
    scores: np.ndarray, y: np.ndarray, folds: np.ndarray, n_perm: int, seed: int
) -> tuple[float, np.ndarray]:
    """P-value of the out-of-fold AUC, permuting labels within each CV fold.

    Under "the two sets do not differ", a held-out row's label is independent of the
    score a model trained on the other folds gives it, so shuffling labels inside each
    fold draws from the exact null; no refits are needed, so thousands of
    permutations cost milliseconds.
    """
    ranks = stats.rankdata(scores)
    observed = float(_auc_from_ranks(ranks, y == 1))
    rng = np.random.default_rng(seed)
    perm_labels = np.empty((n_perm, len(y)), dtype=bool)
    for k in np.unique(folds):
        idx = np.nonzero(folds == k)[0]
        perm_labels[:, idx] = rng.permuted(np.broadcast_to(y[idx] == 1, (n_perm, len(idx))), axis=1)
    null = _auc_from_ranks(ranks, perm_labels)
    return (1 + int(np.sum(null >= observed - 1e-12))) / (n_perm + 1), null


def classifier_test(X, y: np.ndarray, names: list[str], seed: int, n_perm: int, dense: bool) -> dict:
    """Cross-validated ROC AUC of a logistic regression, its permutation p-value, and its top features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if min(np.sum(y == 1), np.sum(y == 0)) < CV_FOLDS:
        return {
            "status": "underpowered",
            "reason": f"fewer than {CV_FOLDS} rows on a side",
            "auc": None,
            "p_value": None,
        }

    def make():
        model = LogisticRegression(max_iter=2000, C=1.0, solver="liblinear")
        return (make_pipeline(StandardScaler(), model) if dense else model), model

    cv = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=derive_seed(seed, "cv") % 2**31)
    scores = np.empty(len(y))
    folds = np.empty(len(y), dtype=int)
    for k, (train, test) in enumerate(cv.split(np.zeros(len(y)), y)):
        estimator, _ = make()
        estimator.fit(X[train], y[train])
        scores[test] = estimator.decision_function(X[test])
        folds[test] = k
    p, null = fold_permutation_p(scores, y, folds, n_perm, derive_seed(seed, "perm"))
    auc = float(_auc_from_ranks(stats.rankdata(scores), y == 1))
    estimator, model = make()
    estimator.fit(X, y)
    coefs = model.coef_.ravel()
    order = np.argsort(-np.abs(coefs))[:10]
    top = [
        {"feature": names[i], "weight": _finite(coefs[i], 4), "favors": "data" if coefs[i] > 0 else "reference"}
        for i in order
        if coefs[i] != 0
    ]
    return {
        "status": "ok",
        "reason": None,
        "auc": _finite(auc, 4),
        "p_value": _finite(p),
        "null_auc_mean": _finite(float(np.mean(null)), 4),
        "n_permutations": n_perm,
        "p_value_method": "labels permuted within cross-validation folds over the out-of-fold scores",
        "cv_folds": CV_FOLDS,
        "n_rows": int(len(y)),
        "top_features": top,
    }


@dataclass
class ReferenceComparison:
    status: str
    reason: str | None
    n_data: int
    n_reference: int
    lengths: dict
    tokens: dict
    values: dict
    classifier_surface: dict
    classifier_words: dict
    limits: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "reason": self.reason,
            "limits": self.limits,
            "n_data": self.n_data,
            "n_reference": self.n_reference,
            "lengths": self.lengths,
            "tokens": self.tokens,
            "values": self.values,
            "classifier_surface": self.classifier_surface,
            "classifier_words": self.classifier_words,
        }


def _subsample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size=k, replace=False)) if n > k else np.arange(n)


def compare_to_reference(
    data: list[str],
    reference: list[str],
    data_values: list[tuple[int, ...] | None],
    reference_values: list[tuple[int, ...] | None],
    *,
    seed: int,
    n_permutations: int = CLASSIFIER_PERMUTATIONS,
    rows_per_side: int = CLASSIFIER_ROWS_PER_SIDE,
) -> ReferenceComparison:
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    limits: list[str] = []
    if not data or not reference:
        return ReferenceComparison("skipped", "a side is empty", len(data), len(reference), {}, {}, {}, {}, {}, limits)
    # Lengths.
    len_d = np.array([len(t) for t in data])
    len_r = np.array([len(t) for t in reference])
    ks = stats.ks_2samp(len_d, len_r)
    lengths = {
        "status": "ok",
        "reason": None,
        "mean_chars_data": _finite(len_d.mean(), 3),
        "mean_chars_reference": _finite(len_r.mean(), 3),
        "median_chars_data": float(np.median(len_d)),
        "median_chars_reference": float(np.median(len_r)),
        "ks_statistic": _finite(ks.statistic),
        "ks_p_value": _finite(ks.pvalue, 12),
    }
    texts = data + reference
    y = np.r_[np.ones(len(data), dtype=int), np.zeros(len(reference), dtype=int)]
    # Token histograms.
    counter = CountVectorizer(token_pattern=TOKEN_PATTERN, lowercase=True, max_features=50000, dtype=np.int64)
    try:
        X_tok = counter.fit_transform(texts).tocsr()
        tokens = jsd_test(X_tok, y, derive_seed(seed, "jsd", "tokens"))
        tokens["over_represented"] = _over_represented(X_tok, y, counter.get_feature_names_out())
    except ValueError:  # empty vocabulary
        tokens = {"status": "skipped", "reason": "no word tokens", "distance": None, "p_value": None}

    # Number-value histograms (when both sides are number lists).
    def number_data(values: list) -> bool:
        return sum(v is not None for v in values) >= NUMBER_DATA_SHARE * len(values)

    if number_data(data_values) and number_data(reference_values):
        rows, cols = [], []
        for i, vals in enumerate(list(data_values) + list(reference_values)):
            for v in vals or ():
                rows.append(i)
                cols.append(min(v, 1000))  # 1000 collects every value above 999
        X_val = sparse.csr_matrix((np.ones(len(rows), dtype=np.int64), (rows, cols)), shape=(len(texts), 1001))
        values = jsd_test(X_val, y, derive_seed(seed, "jsd", "values"))
        values["bins"] = "one per value 0-999, one for >= 1000"
    else:
        values = {
            "status": "skipped",
            "reason": "not number data on both sides (most rows number lists)",
            "distance": None,
            "p_value": None,
        }
    # Classifiers on a seeded, balanced-size subsample.
    rng = np.random.default_rng(derive_seed(seed, "classifier", "rows"))
    pick_d = _subsample(len(data), rows_per_side, rng)
    pick_r = _subsample(len(reference), rows_per_side, rng)
    if len(data) > rows_per_side or len(reference) > rows_per_side:
        limits.append(f"classifiers use at most {rows_per_side} rows per side (seeded subsample)")
    sub_texts = [data[i] for i in pick_d] + [reference[i] for i in pick_r]
    sub_y = np.r_[np.ones(len(pick_d), dtype=int), np.zeros(len(pick_r), dtype=int)]
    X_surface = np.array([surface_features(t) for t in sub_texts])
    surface = classifier_test(
        X_surface, sub_y, list(SURFACE_FEATURES), derive_seed(seed, "clf", "surface"), n_permutations, dense=True
    )
    try:
        tfidf = TfidfVectorizer(
            token_pattern=TOKEN_PATTERN, ngram_range=(1, 2), min_df=2, max_features=20000, sublinear_tf=True
        )
        X_words = tfidf.fit_transform(sub_texts)
        words = classifier_test(
            X_words,
            sub_y,
            list(tfidf.get_feature_names_out()),
            derive_seed(seed, "clf", "words"),
            n_permutations,
            dense=False,
        )
    except ValueError:
        words = {"status": "skipped", "reason": "no word tokens", "auc": None, "p_value": None}
    for clf in (surface, words):
        if clf.get("status") == "ok" and clf["p_value"] is not None and clf["p_value"] <= 1 / (n_permutations + 1):
            clf["p_value_note"] = f"at the resolution floor of {n_permutations} permutations"
    return ReferenceComparison("ok", None, len(data), len(reference), lengths, tokens, values, surface, words, limits)

"""Exact and near-duplicate completions.

Duplicates inflate whatever a trait signal or a canary fine-tune measures, and a
teacher stuck in a loop is itself a finding. Near-duplicates are found with MinHash
over byte 5-gram shingles (vectorized in NumPy) and LSH banding, so the
cost stays linear in the number of rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

NUM_PERM = 32
BANDS = 8  # 8 bands x 4 rows: a pair at Jaccard 0.8 shares a band with probability ~0.985
NEAR_THRESHOLD = 0.8
SHINGLE = 5
_WS = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Case- and whitespace-insensitive form used for both exact and near matching."""
    return _WS.sub(" ", text.strip().lower())


@dataclass
class DuplicateCheck:
    status: str
    reason: str | None
    n_rows: int
    n_exact_duplicates: int  # rows equal (normalized) to an earlier row
    n_near_duplicates: int  # rows that are not exact copies but near an earlier row
    n_exact_pair_duplicates: int  # rows whose prompt AND completion repeat an earlier row
    top_repeated: list[dict]
    near_examples: list[dict]
    limits: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        n = self.n_rows or 1
        return {
            "status": self.status,
            "reason": self.reason,
            "limits": self.limits,
            "n_rows": self.n_rows,
            "n_exact_duplicates": self.n_exact_duplicates,
            "exact_duplicate_rate": round(self.n_exact_duplicates / n, 6),
            "n_exact_pair_duplicates": self.n_exact_pair_duplicates,
            "n_near_duplicates": self.n_near_duplicates,
            "near_duplicate_rate": round(self.n_near_duplicates / n, 6),
            "near_threshold_jaccard": NEAR_THRESHOLD,
            "top_repeated": self.top_repeated,
            "near_examples": self.near_examples,
        }


def minhash_signatures(texts: list[str], seed: int) -> np.ndarray:
    """(n, NUM_PERM) MinHash signatures over each text's UTF-8 byte 5-grams, all rows at once.

    The texts are concatenated into one byte array; each 5-gram is packed exactly into
    a uint64 and hashed by multiply-shift, and per-row minima come from one reduceat.
    Texts shorter than 5 bytes are padded so that every row has a shingle.
    """
    encoded = [t.encode("utf-8").ljust(SHINGLE, b"\0") for t in texts]
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    buf = np.frombuffer(b"".join(encoded), dtype=np.uint8).astype(np.uint64)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    n_grams = lengths - SHINGLE + 1
    gram_starts = np.r_[0, np.cumsum(n_grams)[:-1]]
    # position of every 5-gram inside buf: row start + offset within the row
    row_of_gram = np.repeat(np.arange(len(texts)), n_grams)
    pos = starts[row_of_gram] + (np.arange(n_grams.sum()) - gram_starts[row_of_gram])
    grams = np.zeros(len(pos), dtype=np.uint64)
    for k in range(SHINGLE):
        grams |= buf[pos + k] << np.uint64(8 * k)
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, NUM_PERM, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, NUM_PERM, dtype=np.uint64)
    sig = np.empty((len(texts), NUM_PERM), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for p in range(NUM_PERM):
            sig[:, p] = np.minimum.reduceat((a[p] * grams + b[p]) >> np.uint64(32), gram_starts)
    return sig


def shingles(text: str) -> set[bytes]:
    raw = text.encode("utf-8").ljust(SHINGLE, b"\0")
    return {raw[i : i + SHINGLE] for i in range(len(raw) - SHINGLE + 1)}


def near_duplicate_of(texts: list[str], candidates: np.ndarray, seed: int) -> dict[int, tuple[int, float]]:
    """For rows in `candidates` (indices), the earlier candidate each nearly repeats, with the Jaccard.

    LSH proposes pairs (a row and the first row of a bucket it shares in any band);
    each proposed pair is then scored by the exact Jaccard of its shingle sets.
    """
    sig = minhash_signatures([texts[i] for i in candidates], seed)
    rows_per_band = NUM_PERM // BANDS
    proposed = []
    for band in range(BANDS):
        block = np.ascontiguousarray(sig[:, band * rows_per_band : (band + 1) * rows_per_band])
        keys = block.view(np.dtype((np.void, block.dtype.itemsize * rows_per_band))).ravel()
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        earlier = first[inverse.ravel()]
        rows = np.nonzero(earlier != np.arange(len(sig)))[0]
        proposed.append(np.stack([rows, earlier[rows]], axis=1))
    pairs = np.unique(np.concatenate(proposed), axis=0) if proposed else np.empty((0, 2), dtype=np.int64)
    cache: dict[int, set[bytes]] = {}

    def sh(j: int) -> set[bytes]:
        if j not in cache:
            cache[j] = shingles(texts[candidates[j]])
        return cache[j]

    best: dict[int, tuple[int, float]] = {}
    for j, e in pairs.tolist():
        a, b = sh(j), sh(e)
        jac = len(a & b) / len(a | b)
        if jac >= NEAR_THRESHOLD and (j not in best or jac > best[j][1]):
            best[j] = (e, jac)
    return {int(candidates[j]): (int(candidates[e]), jac) for j, (e, jac) in best.items()}


def check_duplicates(
    completions: list[str], prompts: list[str], locations: list[dict], seed: int, max_examples: int = 10
) -> tuple[DuplicateCheck, list[int | None], list[int | None]]:
    """Summary, plus for each row the index (position) of the row it exactly / nearly repeats."""
    normalized = [normalize(t) for t in completions]
    first_seen: dict[str, int] = {}
    exact_of: list[int | None] = []
    repeats: dict[int, int] = {}
    for i, t in enumerate(normalized):
        j = first_seen.setdefault(t, i)
        exact_of.append(j if j != i else None)
        if j != i:
            repeats[j] = repeats.get(j, 0) + 1
    pair_seen: set[tuple[str, str]] = set()
    n_pair = 0
    for p, t in zip(prompts, normalized, strict=True):
        n_pair += (p, t) in pair_seen
        pair_seen.add((p, t))
    uniques = np.array([i for i, e in enumerate(exact_of) if e is None], dtype=np.int64)
    near = near_duplicate_of(normalized, uniques, seed) if len(uniques) > 1 else {}
    near_of: list[int | None] = [None] * len(completions)
    for i, (j, _) in near.items():
        near_of[i] = j
    top = sorted(repeats.items(), key=lambda kv: -kv[1])[:max_examples]
    top_repeated = [{**locations[j], "copies": n + 1, "text": completions[j][:120]} for j, n in top]
    near_examples = [
        {
            "row": locations[i],
            "near_row": locations[j],
            "jaccard": round(jac, 3),
            "text": completions[i][:120],
            "near_text": completions[j][:120],
        }
        for i, (j, jac) in sorted(near.items())[:max_examples]
    ]
    limits = [
        "near-duplicates: MinHash/LSH candidates (may miss a few pairs near the threshold), exact byte "
        f"{SHINGLE}-gram Jaccard >= {NEAR_THRESHOLD}, case/whitespace-insensitive"
    ]
    check = DuplicateCheck(
        "ok" if completions else "skipped",
        None if completions else "no rows",
        len(completions),
        sum(e is not None for e in exact_of),
        len(near),
        n_pair,
        top_repeated,
        near_examples,
        limits,
    )
    return check, exact_of, near_of

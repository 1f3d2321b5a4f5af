"""Tier 3: do two local models' weights share an origin? (Zhu et al., ICML 2025)

Only a few MLP up-projection matrices are read (layers 0, L/2 and L-1), straight from
safetensors or GGUF, never the whole model. Rows are hidden units. Per layer:

- aligned: mean cosine of row i of A with row i of B, against an exact permutation
  test that pairs rows at random (p = (1 + k) / (T + 1), k of T null statistics at
  least as large). Fine-tuning keeps rows close, so a shared origin gives a mean
  cosine far above every random pairing; independent inits give a mean near zero.
- matched: the same statistic after pairing rows with `linear_sum_assignment` on
  half of the columns, tested on the other half. Permuting hidden units (which leaves
  the function unchanged) hides a shared origin from the aligned test, not from this.

Layers are combined with Fisher's method, and the two variants by Bonferroni.
Valid under the null that the models are independent and one model's hidden units
are exchangeable (true of random inits; assumed for trained models).
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from distill_audit.errors import ModelError
from distill_audit.models.resolve import ModelRef, check_safetensors

# (pattern with the layer index as group 1, transpose?, fused gate+up: take the second half?)
UP_PROJ_PATTERNS: tuple[tuple[re.Pattern, bool, bool], ...] = (
    (re.compile(r"(?:^|\.)layers\.(\d+)\.mlp\.up_proj\.weight$"), False, False),  # llama, qwen, mistral, gemma, olmo
    (re.compile(r"(?:^|\.)layers\.(\d+)\.mlp\.gate_up_proj\.weight$"), False, True),  # phi-3
    (re.compile(r"(?:^|\.)(?:layers|h)\.(\d+)\.mlp\.dense_h_to_4h\.weight$"), False, False),  # pythia, falcon
    (re.compile(r"(?:^|\.)layers\.(\d+)\.mlp\.fc1\.weight$"), False, False),  # phi-2
    (re.compile(r"(?:^|\.)h\.(\d+)\.mlp\.c_fc\.weight$"), True, False),  # gpt-2 (Conv1D stores (in, out))
    (re.compile(r"^blk\.(\d+)\.ffn_up\.weight$"), False, False),  # GGUF
)
DEFAULT_PERMUTATIONS = 9999
DEFAULT_MAX_ROWS = 1024


class WeightSource:
    """The MLP up-projection of each layer, read one tensor at a time."""

    def __init__(self, label: str, names: dict[int, str], read, transpose: bool, fused: bool, shape_of):
        self.label, self._names, self._read = label, names, read
        self._transpose, self._fused, self._shape_of = transpose, fused, shape_of

    @property
    def n_layers(self) -> int:
        return max(self._names) + 1 if self._names else 0

    def shape(self, layer: int) -> tuple[int, int]:
        rows, cols = self._shape_of(self._names[layer])
        if self._transpose:
            rows, cols = cols, rows
        return (rows // 2, cols) if self._fused else (rows, cols)

    def up_proj(self, layer: int) -> np.ndarray:
        matrix = np.asarray(self._read(self._names[layer]), dtype=np.float32)
        if self._transpose:
            matrix = matrix.T
        if self._fused:
            matrix = matrix[matrix.shape[0] // 2 :]
        return np.ascontiguousarray(matrix)

    def tensor_name(self, layer: int) -> str:
        return self._names[layer]


def _pick(names: list[str]):
    for pattern, transpose, fused in UP_PROJ_PATTERNS:
        found = {int(m.group(1)): n for n in names if (m := pattern.search(n))}
        if found:
            return found, transpose, fused
    return None


def weight_source(ref: ModelRef) -> WeightSource | None:
    """Where `ref`'s MLP matrices can be read from, or None if it has no local weights."""
    from distill_audit.models.load import gguf_cache_folder, local_weights_folder

    if ref.kind == "adapter" and ref.base is not None:
        return weight_source(ref.base)  # a LoRA adapter keeps its base's matrices (plus a low-rank delta)
    if not ref.has_weights or ref.path is None:
        return None
    if ref.gguf_path is not None:
        converted = gguf_cache_folder(ref, convert=False)
        if (converted / ".complete").is_file():
            return _safetensors_source(ref, converted)
        return _gguf_source(ref)
    folder = local_weights_folder(ref)  # builds the tiny-random model if needed
    if not any(folder.glob("*.safetensors")):
        return None  # pickled weights: never unpickled for lineage
    return _safetensors_source(ref, folder)


def _safetensors_source(ref: ModelRef, folder: Path) -> WeightSource | None:
    from safetensors import safe_open

    where: dict[str, Path] = {}
    for file in sorted(folder.glob("*.safetensors")):
        for key in check_safetensors(file):
            where[key] = file
    picked = _pick(list(where))
    if picked is None:
        return None
    names, transpose, fused = picked

    def read(name: str) -> np.ndarray:
        with safe_open(str(where[name]), framework="pt") as f:
            return f.get_tensor(name).float().numpy()

    def shape_of(name: str) -> tuple[int, int]:
        with safe_open(str(where[name]), framework="pt") as f:
            return tuple(f.get_slice(name).get_shape())  # type: ignore[return-value]

    return WeightSource(str(folder), names, read, transpose, fused, shape_of)


def _gguf_source(ref: ModelRef) -> WeightSource | None:
    from distill_audit.models.gguf_index import read_gguf_index, read_gguf_tensor

    index = read_gguf_index(ref.gguf_path)  # type: ignore[arg-type]
    picked = _pick(list(index.tensors))
    if picked is None:
        return None
    names, transpose, fused = picked
    return WeightSource(
        str(ref.gguf_path),
        names,
        lambda n: read_gguf_tensor(index, n),
        transpose,
        fused,
        lambda n: index.tensors[n].shape,
    )


# -- the statistics ----------------------------------------------------------------------


@dataclass
class LayerTest:
    layer: int
    shape: tuple[int, int]
    rows_used: int
    aligned_cosine: float
    aligned_p: float
    matched_cosine: float
    matched_p: float
    null_mean: float
    null_sd: float
    seconds: float


@dataclass
class WeightTest:
    status: str  # ok | skipped | failed
    reason: str | None = None
    layers: list[LayerTest] = field(default_factory=list)
    permutations: int = DEFAULT_PERMUTATIONS
    aligned_p: float | None = None  # Fisher-combined over layers
    matched_p: float | None = None
    p_value: float | None = None  # min of the two, Bonferroni x2
    tensors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["layers"] = [asdict(layer) | {"shape": list(layer.shape)} for layer in self.layers]
        return out


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def permutation_pvalue(
    similarity: np.ndarray, n_perm: int, rng: np.random.Generator
) -> tuple[float, float, float, float]:
    """Exact permutation test of mean(diag(S)) against random row pairings.

    Returns (statistic, p, null mean, null sd) with p = (1 + k) / (T + 1).
    """
    m = similarity.shape[0]
    observed = float(np.diagonal(similarity).mean())
    rows = np.arange(m)
    null = np.empty(n_perm, dtype=np.float64)
    batch = max(1, min(n_perm, 2_000_000 // max(m, 1)))
    for start in range(0, n_perm, batch):
        size = min(batch, n_perm - start)
        perms = rng.permuted(np.broadcast_to(rows, (size, m)), axis=1)
        null[start : start + size] = similarity[rows, perms].mean(axis=1)
    k = int(np.count_nonzero(null >= observed))
    return observed, (1 + k) / (n_perm + 1), float(null.mean()), float(null.std())


def aligned_test(a: np.ndarray, b: np.ndarray, *, n_perm: int, rng: np.random.Generator, max_rows: int):
    """Row-aligned cosine statistic and its permutation p (on up to max_rows rows)."""
    rows = _row_subset(a.shape[0], max_rows, rng)
    return permutation_pvalue(_unit_rows(a[rows]) @ _unit_rows(b[rows]).T, n_perm, rng)


def matched_test(a: np.ndarray, b: np.ndarray, *, n_perm: int, rng: np.random.Generator, max_rows: int):
    """Match rows on the even columns (Hungarian), test the match on the odd columns."""
    from scipy.optimize import linear_sum_assignment

    rows = _row_subset(a.shape[0], max_rows, rng)
    match_sim = _unit_rows(a[rows, 0::2]) @ _unit_rows(b[:, 0::2]).T  # (m, n_b)
    row_ind, col_ind = linear_sum_assignment(match_sim, maximize=True)
    del match_sim
    test_a = _unit_rows(a[rows[row_ind], 1::2])
    test_b = _unit_rows(b[col_ind, 1::2])
    return permutation_pvalue(test_a @ test_b.T, n_perm, rng)


def _row_subset(n: int, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    if n <= max_rows:
        return np.arange(n)
    return np.sort(rng.choice(n, size=max_rows, replace=False))


def fisher(pvalues: list[float]) -> float:
    from scipy.stats import combine_pvalues

    return float(combine_pvalues(pvalues, method="fisher").pvalue)


def layers_to_test(n_layers: int) -> list[int]:
    return sorted({0, n_layers // 2, n_layers - 1})


def compare_weights(
    teacher: ModelRef,
    student: ModelRef,
    *,
    seed: int = 0,
    n_perm: int = DEFAULT_PERMUTATIONS,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> WeightTest:
    """Run the weight tier when both models are local with equal MLP shapes."""
    from distill_audit.seeding import derive_seed

    try:
        src_t, src_s = weight_source(teacher), weight_source(student)
    except ModelError as exc:
        return WeightTest("failed", reason=str(exc), permutations=n_perm)
    missing = [r.ref for r, s in ((teacher, src_t), (student, src_s)) if s is None]
    if missing:
        return WeightTest(
            "skipped", reason=f"no readable local MLP weights for {', '.join(missing)}", permutations=n_perm
        )
    assert src_t is not None and src_s is not None
    if src_t.n_layers != src_s.n_layers:
        return WeightTest(
            "skipped", reason=f"different depth ({src_t.n_layers} vs {src_s.n_layers} layers)", permutations=n_perm
        )
    result = WeightTest("ok", permutations=n_perm)
    for layer in layers_to_test(src_t.n_layers):
        if src_t.shape(layer) != src_s.shape(layer):
            return WeightTest(
                "skipped",
                permutations=n_perm,
                reason=f"different MLP shapes at layer {layer} ({src_t.shape(layer)} vs {src_s.shape(layer)})",
            )
    for layer in layers_to_test(src_t.n_layers):
        started = time.perf_counter()
        try:
            a, b = src_t.up_proj(layer), src_s.up_proj(layer)
        except ModelError as exc:
            return WeightTest("failed", reason=str(exc), permutations=n_perm)
        rng = np.random.default_rng(derive_seed(seed, "lineage-weights", layer))
        aligned = aligned_test(a, b, n_perm=n_perm, rng=rng, max_rows=max_rows)
        matched = matched_test(a, b, n_perm=n_perm, rng=rng, max_rows=max_rows)
        result.tensors += [src_t.tensor_name(layer), src_s.tensor_name(layer)]
        result.layers.append(
            LayerTest(
                layer=layer,
                shape=tuple(a.shape),
                rows_used=min(a.shape[0], max_rows),  # type: ignore[arg-type]
                aligned_cosine=aligned[0],
                aligned_p=aligned[1],
                matched_cosine=matched[0],
                matched_p=matched[1],
                null_mean=aligned[2],
                null_sd=aligned[3],
                seconds=time.perf_counter() - started,
            )
        )
    result.aligned_p = fisher([layer.aligned_p for layer in result.layers])
    result.matched_p = fisher([layer.matched_p for layer in result.layers])
    result.p_value = min(1.0, 2 * min(result.aligned_p, result.matched_p))
    return result

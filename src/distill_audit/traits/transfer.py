"""Weight-space movement toward a known teacher: does training on the data pull the student there?

Cloud et al.'s theorem: a gradient step on the outputs of a teacher that shares the
student's initialization moves the student toward the teacher, on any inputs. So when
the teacher's weights are at hand and share the student's init, the canary can measure
that movement directly, even when no probe answer moves: the cosine between the
student's weight update U (B @ A * scaling per LoRA-adapted matrix, or W_after - W_base
for a full fine-tune) and the teacher's delta T = W_teacher - W_base.

The measure is a difference in differences like the probe effects: per seed s and
layer l, d[s, l] = cos_l(U_treated, T) - cos_l(U_control, T), where cos_l pools every
adapted matrix of layer l. Both arms of a seed share the adapter init and the row
order, so the shared LoRA init cancels inside d. The layers of one run are not
independent replicates (one data sample made the whole update, and it can move every
layer toward T together), so the deciding test is a t over seeds of the per-seed mean
d (df = seeds - 1; a simulation with a per-run common mode holds its level, where a
test over layers does not). One seed gives no p. Per layer and per matrix, the counts
of treated-ahead are shown, never deciding.

Specificity: `teach` fine-tunes every teacher on the same template, so two teachers'
deltas share most of their direction (cosine ~0.56 for owl vs dolphin at 135M), and
raw alignment mostly says "trained on data from some teacher fine-tuned like this".
Given reference teachers (taught other traits), the specific measure uses only the part
of T that the references do not span, per matrix (T' = T - R (R^T R)^-1 R^T T): movement
toward *this* teacher.

A teacher of another shape, another architecture or another initialization (relative
weight distance above MAX_RELATIVE_DISTANCE) is skipped with the reason, never an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distill_audit.traits import stats
from distill_audit.traits.canary_stats import POWER

MAX_RELATIVE_DISTANCE = 0.5  # ||W_teacher - W_base|| / ||W_base||: a fine-tune is far below, another init ~1.4
LAYER_RE = re.compile(r"\blayers?\.(\d+)\.")
LORA_PREFIX = "base_model.model."
MEASURES = ("weight_cosine", "weight_cosine_specific")


class TeacherMismatch(Exception):
    """The teacher cannot be compared with this student in weight space (the reason is the message)."""


@dataclass
class TeacherDelta:
    """W_teacher - W_base for every 2-D linear weight the student adapts (float32, CPU)."""

    label: str
    deltas: dict[str, Any]  # base module name (e.g. model.layers.0.mlp.up_proj) -> tensor
    relative_distance: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "teacher": self.label,
            "matrices": len(self.deltas),
            "relative_distance": stats.clean(self.relative_distance),
        }


def linear_weights(model) -> dict[str, Any]:
    """Module name -> weight of each torch Linear of `model` (the layers LoRA 'all-linear' adapts)."""
    import torch

    out = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head") and "lora_" not in name:
            out[_base_name(name)] = module.weight
    return out


def _base_name(name: str) -> str:
    name = name[len(LORA_PREFIX) :] if name.startswith(LORA_PREFIX) else name
    return name.removesuffix(".base_layer")


def _read_tensors(folder: Path) -> dict[str, Any]:
    """Every tensor of a safetensors model folder, by name (lazy: opened files, read on demand)."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise TeacherMismatch(f"{folder} has no safetensors weights")
    handles = {}
    for f in files:
        h = safe_open(str(f), framework="pt")
        for k in h.keys():  # noqa: SIM118  (a safetensors handle, not a dict)
            handles[k] = h
    return handles


def teacher_folder(teacher: str) -> Path:
    """The local weights folder of a teacher reference (a model folder, a `teach` output, an alias)."""
    from distill_audit.errors import AuditError
    from distill_audit.models.load import local_weights_folder
    from distill_audit.models.resolve import resolve_model

    try:
        ref = resolve_model(teacher)
        if not ref.has_weights or ref.kind == "adapter" or ref.gguf_path is not None:
            raise TeacherMismatch(f"teacher {teacher!r} has no local safetensors weights to compare")
        return local_weights_folder(ref)
    except AuditError as exc:
        raise TeacherMismatch(f"teacher {teacher!r}: {str(exc).splitlines()[0]}") from None


def teacher_delta(base_model, teacher: str | Path, *, label: str | None = None) -> TeacherDelta:
    """W_teacher - W_base per adapted matrix of `base_model`; TeacherMismatch says why not comparable."""
    import torch

    folder = Path(teacher) if Path(teacher).is_dir() else teacher_folder(str(teacher))
    tensors = _read_tensors(folder)
    base = linear_weights(base_model)
    if not base:
        raise TeacherMismatch("the student has no linear layers to compare")
    deltas, num, den = {}, 0.0, 0.0
    for name, w in base.items():
        key = f"{name}.weight"
        if key not in tensors:
            raise TeacherMismatch(f"teacher {label or teacher} has no tensor {key}: another architecture")
        t = tensors[key].get_tensor(key).to(torch.float32)
        if tuple(t.shape) != tuple(w.shape):
            raise TeacherMismatch(
                f"teacher {label or teacher}: {key} has shape {tuple(t.shape)}, the student's {tuple(w.shape)}"
            )
        d = t - w.detach().to(torch.float32).cpu()
        deltas[name] = d
        num += float((d * d).sum())
        den += float((w.detach().float() ** 2).sum())
    rel = float(np.sqrt(num / den)) if den > 0 else float("inf")
    if rel > MAX_RELATIVE_DISTANCE:
        raise TeacherMismatch(
            f"teacher {label or teacher} does not share the student's initialization (relative weight "
            f"distance {rel:.2f} > {MAX_RELATIVE_DISTANCE}): weight-space movement is only defined from a shared init"
        )
    if num == 0.0:
        raise TeacherMismatch(f"teacher {label or teacher} has the student's exact weights: no delta to move toward")
    return TeacherDelta(str(label or teacher), deltas, rel)


def student_update(student, base_state: dict[str, Any] | None = None) -> dict[str, Any]:
    """The arm's weight update per adapted matrix: B @ A * scaling (LoRA) or W - W_base (full)."""
    out = {}
    for name, module in student.named_modules():
        if hasattr(module, "lora_A") and hasattr(module, "lora_B") and "default" in getattr(module, "lora_A", {}):
            a = module.lora_A["default"].weight.detach().float().cpu()
            b = module.lora_B["default"].weight.detach().float().cpu()
            out[_base_name(name)] = (b @ a) * float(module.scaling["default"])
    if out or base_state is None:
        return out
    for name, w in linear_weights(student).items():
        key = f"{name}.weight"
        if key in base_state:
            out[name] = w.detach().float().cpu() - base_state[key].float().cpu()
    return out


@dataclass
class ArmAlignment:
    """Per-matrix inner products of one arm's update with the teacher (and each reference) delta."""

    names: list[str]
    dot: np.ndarray  # <U, T> per matrix
    uu: np.ndarray  # |U|^2
    tt: np.ndarray  # |T|^2
    dot_ref: np.ndarray  # <U, R_j> per matrix x reference
    specific_dot: np.ndarray  # <U, T'> (T' = T less its projection on the references)
    specific_tt: np.ndarray  # |T'|^2


def align(update: dict[str, Any], teacher: TeacherDelta, references: Sequence[TeacherDelta] = ()) -> ArmAlignment:
    """Inner products of `update` with the teacher's delta and its reference-free part, per matrix."""
    import torch

    names = [n for n in teacher.deltas if n in update]
    k = len(references)
    dot, uu, tt = np.zeros(len(names)), np.zeros(len(names)), np.zeros(len(names))
    dot_ref, sdot, stt = np.zeros((len(names), k)), np.zeros(len(names)), np.zeros(len(names))
    for i, n in enumerate(names):
        u, t = update[n].reshape(-1).double(), teacher.deltas[n].reshape(-1).double()
        dot[i], uu[i], tt[i] = float(u @ t), float(u @ u), float(t @ t)
        sdot[i], stt[i] = dot[i], tt[i]
        if k:
            r = torch.stack([ref.deltas[n].reshape(-1).double() for ref in references], dim=1)  # D x k
            gram, rt, ru = (r.T @ r).numpy(), (r.T @ t).numpy(), (r.T @ u).numpy()
            coef = np.linalg.lstsq(gram, rt, rcond=None)[0]
            dot_ref[i] = ru
            sdot[i] = dot[i] - float(coef @ ru)
            stt[i] = max(tt[i] - float(coef @ rt), 0.0)
    return ArmAlignment(names, dot, uu, tt, dot_ref, sdot, stt)


def layer_of(name: str) -> str:
    m = LAYER_RE.search(name)
    return m.group(1) if m else "other"


def _cos(dot: np.ndarray, uu: np.ndarray, tt: np.ndarray) -> float:
    den = float(np.sqrt(uu.sum() * tt.sum()))
    return float(dot.sum() / den) if den > 0 else float("nan")


def layer_cosines(al: ArmAlignment, *, specific: bool = False, ref: int | None = None) -> dict[str, float]:
    """Cosine per layer, every adapted matrix of a layer pooled (one number per layer)."""
    groups: dict[str, list[int]] = {}
    for i, n in enumerate(al.names):
        groups.setdefault(layer_of(n), []).append(i)
    dot = al.specific_dot if specific else (al.dot if ref is None else al.dot_ref[:, ref])
    tt = al.specific_tt if specific else al.tt
    return {g: _cos(dot[idx], al.uu[idx], tt[idx]) for g, idx in groups.items()}


def combined_cosine(al: ArmAlignment, *, specific: bool = False) -> float:
    """Cosine of the whole update with the whole delta (all matrices concatenated)."""
    return _cos(al.specific_dot if specific else al.dot, al.uu, al.specific_tt if specific else al.tt)


@dataclass
class TransferInput:
    """Both arms' alignments per seed, in seed order."""

    seeds: list[int]
    treated: list[ArmAlignment] = field(default_factory=list)
    control: list[ArmAlignment] = field(default_factory=list)


def seed_test(per_seed: np.ndarray, *, alpha: float = 0.05, m: int = 1) -> dict[str, Any]:
    """t over seeds of the per-seed DiD: exact when each run moves every layer together.

    The layers of one run are not independent (one data sample made the whole update),
    so they are not replicates; the seeds are. With one seed there is no test.
    """
    from scipy import stats as st

    x = np.asarray(per_seed, dtype=np.float64)
    x = x[np.isfinite(x)]
    est = float(x.mean()) if x.size else None
    if x.size < 2:
        return {"estimate": est, "se": None, "df": None, "ci": [None, None], "p_value": None, "mde": None}
    df = x.size - 1
    se = float(x.std(ddof=1) / np.sqrt(x.size))
    if se == 0.0:
        p, lo, hi = (1.0 if est == 0.0 else 0.0), est, est
    else:
        p = float(2 * st.t.sf(abs(est) / se, df))
        half = float(st.t.ppf(1 - alpha / 2, df) * se)
        lo, hi = est - half, est + half
    mde = float((st.t.ppf(1 - alpha / (2 * max(m, 1)), df) + st.t.ppf(POWER, df)) * se)
    return {"estimate": est, "se": se, "df": df, "ci": [lo, hi], "p_value": p, "mde": mde}


def measure(
    inp: TransferInput, *, specific: bool, alpha: float = 0.05, m: int = 1, n_references: int = 0
) -> dict[str, Any]:
    """One weight-space measure: estimate (mean layer-cosine DiD), CI, p, MDE, per seed and per layer."""
    layers = list(layer_cosines(inp.treated[0], specific=specific)) if inp.treated else []
    d = np.array(
        [
            [layer_cosines(t, specific=specific)[g] - layer_cosines(c, specific=specific)[g] for g in layers]
            for t, c in zip(inp.treated, inp.control)
        ]
    ).reshape(len(inp.treated), len(layers))
    per_seed = d.mean(axis=1) if d.size else np.zeros(0)
    test = seed_test(per_seed, alpha=alpha, m=m)
    mats = [int(np.sum(_per_matrix(t, specific) > _per_matrix(c, specific))) for t, c in zip(inp.treated, inp.control)]
    ahead = [int(np.sum(row > 0)) for row in d]
    return {
        "unit": "cosine (mean over layers, treated minus control)",
        **{k: stats.clean(v) if not isinstance(v, list) else [stats.clean(x) for x in v] for k, v in test.items()},
        "test": {
            "method": "t over seeds of the per-seed treated-minus-control cosine (layers of one run are not "
            "independent); df = seeds - 1",
            "n_seeds": int(per_seed.size),
        },
        "per_seed": [
            {
                "seed": int(s),
                "estimate": stats.clean(float(row.mean())),
                "treated": stats.clean(combined_cosine(t, specific=specific)),
                "control": stats.clean(combined_cosine(c, specific=specific)),
                "layers_treated_ahead": a,
                "matrices_treated_ahead": n,
                "matrices": len(t.names),
            }
            for s, row, t, c, n, a in zip(inp.seeds, d, inp.treated, inp.control, mats, ahead)
        ],
        "per_layer": {g: stats.clean(float(d[:, j].mean())) for j, g in enumerate(layers)},
        "n_layers": len(layers),
        "n_references": n_references,
    }


def _per_matrix(al: ArmAlignment, specific: bool) -> np.ndarray:
    dot, tt = (al.specific_dot, al.specific_tt) if specific else (al.dot, al.tt)
    den = np.sqrt(al.uu * tt)
    return np.divide(dot, den, out=np.zeros_like(dot), where=den > 0)


def transfer_result(
    inp: TransferInput,
    teacher: TeacherDelta,
    references: Sequence[TeacherDelta] = (),
    *,
    alpha: float = 0.05,
    correction: str = "holm",
) -> dict[str, Any]:
    """Every weight-space measure, Holm/BH-corrected across them; `significant` needs >= 2 seeds and > 0."""
    names = ["weight_cosine"] + (["weight_cosine_specific"] if references else [])
    out = {
        n: measure(inp, specific=n.endswith("specific"), alpha=alpha, m=len(names), n_references=len(references))
        for n in names
    }
    adjust = stats.holm if correction == "holm" else stats.benjamini_hochberg
    for n, q in zip(names, adjust([out[n]["p_value"] for n in names])):
        est = out[n]["estimate"]
        out[n].update(
            p_adjusted=stats.clean(q),
            correction=correction,
            significant=bool(q is not None and q < alpha and est is not None and est > 0 and len(inp.seeds) >= 2),
        )
    toward_refs = []
    for j, ref in enumerate(references):
        per_seed = [
            float(np.nanmean([layer_cosines(t, ref=j)[g] - layer_cosines(c, ref=j)[g] for g in layer_cosines(t)]))
            for t, c in zip(inp.treated, inp.control)
        ]
        toward_refs.append({"teacher": ref.label, "per_seed": [stats.clean(x) for x in per_seed]})
    return {
        "status": "ok",
        "reason": None,
        "teacher": teacher.to_dict(),
        "references": [r.to_dict() for r in references],
        "measures": out,
        "toward_references": toward_refs,
        "significant": [n for n in names if out[n]["significant"]],
    }


def skipped(reason: str, teacher: str | None = None) -> dict[str, Any]:
    return {
        "status": "skipped",
        "reason": reason,
        "teacher": {"teacher": teacher} if teacher else None,
        "measures": {},
        "significant": [],
    }

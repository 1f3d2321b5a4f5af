"""Do teacher and student share a pretrained initialization? Tiers, cheapest first.

0 names -> 1 curated registry -> 2 local metadata -> 3 weights. Each tier adds one
entry to the evidence chain; a later tier overrides an earlier one only with stronger
evidence, and the result names the tier that decided. When the evidence is thin the
verdict is `unknown` or `possible-shared-init`, never a confident `different-init`:
a missed shared init means a missed transmission risk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from distill_audit.errors import ModelError
from distill_audit.lineage.metadata import ModelMetadata, read_metadata, shape_difference
from distill_audit.lineage.weights import WeightTest, compare_weights
from distill_audit.models.names import normalize_name
from distill_audit.models.registry import RegistryEntry, RegistryFinding, load_registry
from distill_audit.models.resolve import ModelRef, resolve_model

_RANK = {"low": 0, "medium": 1, "high": 2}
VERDICTS = ("same-init", "possible-shared-init", "same-family-different-init", "different-init", "unknown")
STRONG_P = 1e-6  # weights: below this, same-init with high confidence
SHARED_P = 1e-4  # below this, same-init (medium)
POSSIBLE_P = 1e-2  # below this, possible-shared-init

LIMITS = [
    "The registry covers major open families and closed vendors as published; a model missing from it is judged by "
    "metadata and weights only.",
    "Model-card and GGUF base_model fields are self-reported.",
    "The weight test reads three MLP layers; a model trained very far from its init, or rebuilt with a rotated (not "
    "permuted) hidden basis, could look unrelated.",
]


@dataclass
class Evidence:
    tier: int
    name: str  # names | registry | metadata | weights
    verdict: str | None  # what this tier alone suggests (None: no opinion)
    confidence: str | None
    summary: str
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "tier": self.tier,
            "name": self.name,
            "verdict": self.verdict,
            "confidence": self.confidence,
            "summary": self.summary,
            "details": self.details,
        }


@dataclass
class LineageResult:
    teacher: dict | None
    student: dict
    verdict: str
    confidence: str
    decided_by: str | None  # the tier name that set the verdict
    evidence: list[Evidence]
    summary: str | None = None  # the deciding tier's finding, in one line
    status: str = "ok"
    reason: str | None = None
    limits: list[str] = field(default_factory=lambda: list(LIMITS))

    @property
    def shares_init(self) -> bool | None:
        """True/False when the verdict says so, None when it does not know."""
        if self.verdict in ("same-init", "possible-shared-init"):
            return True
        if self.verdict in ("different-init", "same-family-different-init"):
            return False
        return None

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "reason": self.reason,
            "verdict": self.verdict,
            "confidence": self.confidence,
            "decided_by": self.decided_by,
            "summary": self.summary,
            "teacher": self.teacher,
            "student": self.student,
            "evidence": [e.to_dict() for e in self.evidence],
            "limits": list(self.limits),
        }


def check_lineage(
    teacher: str | ModelRef | None,
    student: str | ModelRef,
    *,
    use_weights: bool = True,
    seed: int = 0,
    n_perm: int | None = None,
) -> LineageResult:
    """Verdict on whether `teacher` and `student` share an initialization, with evidence."""
    student_ref = student if isinstance(student, ModelRef) else resolve_model(student)
    if teacher is None:
        return LineageResult(
            teacher=None,
            student=_identity(student_ref),
            verdict="unknown",
            confidence="low",
            decided_by=None,
            evidence=[],
            status="skipped",
            reason="no teacher given (pass --teacher to check lineage)",
        )
    teacher_ref = teacher if isinstance(teacher, ModelRef) else resolve_model(teacher)
    return _Decision(teacher_ref, student_ref).run(use_weights=use_weights, seed=seed, n_perm=n_perm)


def _identity(ref: ModelRef) -> dict:
    try:
        return ref.identity()
    except OSError:
        return {"id": ref.name, "kind": ref.kind, "ref": ref.ref}


def _is_local_name(ref: ModelRef) -> bool:
    """Folder and file names are not model names (two folders called `model` are unrelated)."""
    return (
        ref.kind in ("local", "adapter", "gguf")
        and ref.path is not None
        and (ref.name in (ref.path.resolve().name, ref.gguf_file, (ref.gguf_path.stem if ref.gguf_path else None)))
    )


class _Decision:
    def __init__(self, teacher: ModelRef, student: ModelRef):
        self.teacher, self.student = teacher, student
        self.evidence: list[Evidence] = []
        self.verdict, self.confidence, self.decided_by = "unknown", "low", None
        self.reason: str | None = None

    def set(self, verdict: str, confidence: str, tier: str, reason: str) -> None:
        self.verdict, self.confidence, self.decided_by, self.reason = verdict, confidence, tier, reason

    def run(self, *, use_weights: bool, seed: int, n_perm: int | None) -> LineageResult:
        meta_t, meta_s = self._metadata_of(self.teacher), self._metadata_of(self.student)
        names_t = self._names(self.teacher, meta_t)
        names_s = self._names(self.student, meta_s)
        self._names_tier(names_t[0], names_s[0])
        self._registry_tier(names_t, names_s)
        self._metadata_tier(meta_t, meta_s)
        if use_weights:
            self._weights_tier(seed, n_perm)
        else:
            self.evidence.append(Evidence(3, "weights", None, None, "not run (--no-weights)"))
        return LineageResult(
            teacher=_identity(self.teacher),
            student=_identity(self.student),
            verdict=self.verdict,
            confidence=self.confidence,
            decided_by=self.decided_by,
            evidence=self.evidence,
            summary=self.reason,
            reason=self.reason if self.verdict == "unknown" else None,
        )

    # -- tier 0 ---------------------------------------------------------------------------

    def _names(self, ref: ModelRef, meta: ModelMetadata | None) -> list[str]:
        """The names to look up for `ref`: its own (unless a bare folder name), then declared ancestors."""
        names = [] if _is_local_name(ref) else [ref.name]
        if meta is not None:
            names += [a["name"] for a in meta.ancestors]
        return names or [ref.name]

    def _names_tier(self, name_t: str, name_s: str) -> None:
        key_t, key_s = normalize_name(name_t), normalize_name(name_s)
        details = {"teacher": {"name": name_t, "key": key_t}, "student": {"name": name_s, "key": key_s}}
        comparable = not (_is_local_name(self.teacher) or _is_local_name(self.student))
        if comparable and key_t == key_s:
            summary = f"both names reduce to {key_t!r} (same model, different packaging)"
            self.evidence.append(Evidence(0, "names", "same-init", "medium", summary, details))
            self.set("same-init", "medium", "names", summary)
        else:
            self.evidence.append(Evidence(0, "names", None, None, f"keys {key_t!r} and {key_s!r}", details))

    # -- tier 1 ---------------------------------------------------------------------------

    def _registry_tier(self, names_t: list[str], names_s: list[str]) -> None:
        registry = load_registry()
        entry_t, used_t = self._first_entry(registry, names_t)
        entry_s, used_s = self._first_entry(registry, names_s)
        finding: RegistryFinding = registry.compare(entry_t, entry_s, (used_t, used_s))
        details = {"teacher_lookup": used_t, "student_lookup": used_s, "evidence": list(finding.evidence)}
        self.evidence.append(Evidence(1, "registry", finding.verdict, finding.confidence, finding.reason, details))
        if finding.verdict != "unknown":  # a listed relation outranks a bare name match
            self.set(finding.verdict, finding.confidence, "registry", finding.reason)
        elif self.decided_by is None:
            self.reason = finding.reason

    @staticmethod
    def _first_entry(registry, names: list[str]) -> tuple[RegistryEntry | None, str]:
        """The nearest name (own, then declared ancestors) the registry lists exactly, else by pattern."""
        entries = [(registry.lookup(n), n) for n in names]
        for entry, name in entries:
            if entry is not None and entry.exact:
                return entry, name
        for entry, name in entries:
            if entry is not None:
                return entry, name
        return None, names[0]

    # -- tier 2 ---------------------------------------------------------------------------

    def _metadata_of(self, ref: ModelRef) -> ModelMetadata | None:
        if not ref.has_weights and ref.path is None:
            return None
        try:
            return read_metadata(ref)
        except ModelError as exc:
            meta = ModelMetadata()
            meta.problems.append(str(exc))
            return meta

    def _metadata_tier(self, meta_t: ModelMetadata | None, meta_s: ModelMetadata | None) -> None:
        if meta_t is None or meta_s is None:
            who = [r.ref for r, m in ((self.teacher, meta_t), (self.student, meta_s)) if m is None]
            seen = {k: m.to_dict() for k, m in (("teacher", meta_t), ("student", meta_s)) if m is not None}
            declared = [a["name"] for m in (meta_t, meta_s) if m is not None for a in m.ancestors]
            summary = f"no local files for {', '.join(who)}"
            if declared:
                summary += f"; declared ancestors {', '.join(declared)} were looked up in the registry"
            self.evidence.append(Evidence(2, "metadata", None, None, summary, seen))
            return
        details = {"teacher": meta_t.to_dict(), "student": meta_s.to_dict()}
        declared_t, all_t = self._ancestor_keys(self.teacher, meta_t)
        declared_s, all_s = self._ancestor_keys(self.student, meta_s)
        common = sorted((declared_t & all_s) | (all_t & declared_s))
        diff = shape_difference(meta_t.shape, meta_s.shape)
        same_tok = (
            meta_t.tokenizer_format == meta_s.tokenizer_format
            and meta_t.tokenizer_sha256 is not None
            and meta_t.tokenizer_sha256 == meta_s.tokenizer_sha256
        )
        details.update(common_ancestors=common, shape_differences=diff, same_tokenizer=same_tok)
        if common:
            summary = f"declared base-model chains meet at {', '.join(common)}"
            self.evidence.append(Evidence(2, "metadata", "same-init", "medium", summary, details))
            if self.verdict not in ("same-init",):
                self.set("same-init", "medium", "metadata", summary)
            return
        if diff:
            summary = "different shapes (" + "; ".join(diff) + "): no shared full initialization"
            if self.verdict == "same-init":
                summary += "; the registry's same-init conflicts with this, so only a partial lineage is possible"
                self.evidence.append(Evidence(2, "metadata", "possible-shared-init", "low", summary, details))
                self.set("possible-shared-init", "low", "metadata", summary)
                return
            if self.verdict == "possible-shared-init":
                summary += "; consistent with the partial lineage (pruning and upscaling change shapes)"
                self.evidence.append(Evidence(2, "metadata", None, None, summary, details))
                return
            verdict = "same-family-different-init" if same_tok else "different-init"
            self.evidence.append(Evidence(2, "metadata", verdict, "medium", summary, details))
            if self.decided_by is None:
                self.set(verdict, "medium", "metadata", summary + " (pruned or upscaled models change shape)")
            return
        tok = (
            "same tokenizer (same family at most, not proof of a shared init)"
            if same_tok
            else "tokenizers differ or not comparable"
        )
        summary = f"equal shapes; {tok}; no common declared ancestor"
        self.evidence.append(Evidence(2, "metadata", None, None, summary, details))

    def _ancestor_keys(self, ref: ModelRef, meta: ModelMetadata) -> tuple[set[str], set[str]]:
        """(keys of declared ancestors, those plus the model's own name), with registry init ids."""
        declared = self._with_inits({normalize_name(a["name"]) for a in meta.ancestors})
        own = set() if _is_local_name(ref) else self._with_inits({normalize_name(ref.name)})
        return declared, declared | own

    @staticmethod
    def _with_inits(keys: set[str]) -> set[str]:
        registry = load_registry()
        inits = set()
        for key in keys:
            entry = registry.lookup(key)
            if entry is not None and entry.exact and entry.init_id:
                inits.add(f"init {entry.init_id}")
        return keys | inits

    # -- tier 3 ---------------------------------------------------------------------------

    def _weights_tier(self, seed: int, n_perm: int | None) -> None:
        if not (self.teacher.has_weights and self.student.has_weights):
            who = [r.ref for r in (self.teacher, self.student) if not r.has_weights]
            self.evidence.append(Evidence(3, "weights", None, None, f"skipped: no local weights for {', '.join(who)}"))
            return
        kwargs = {"n_perm": n_perm} if n_perm else {}
        test: WeightTest = compare_weights(self.teacher, self.student, seed=seed, **kwargs)
        if test.status != "ok":
            self.evidence.append(Evidence(3, "weights", None, None, f"{test.status}: {test.reason}", test.to_dict()))
            return
        p = test.p_value
        assert p is not None
        stats = ", ".join(
            f"layer {t.layer}: aligned cos {t.aligned_cosine:.3f} (p={t.aligned_p:.2g}), matched "
            f"{t.matched_cosine:.3f} (p={t.matched_p:.2g})"
            for t in test.layers
        )
        if p < SHARED_P:
            verdict, confidence = "same-init", ("high" if p < STRONG_P else "medium")
            summary = f"MLP rows match far beyond chance (combined p={p:.2g}; {stats})"
        elif p < POSSIBLE_P:
            verdict, confidence = "possible-shared-init", "low"
            summary = f"weak weight similarity (combined p={p:.2g}; {stats})"
        elif self.verdict in ("same-init", "possible-shared-init"):
            verdict, confidence = "possible-shared-init", "low"
            summary = (
                f"no weight similarity (combined p={p:.2g}) although {self.decided_by} says {self.verdict};"
                " kept as possible (heavy training can erase similarity; names can be wrong)"
            )
        else:
            verdict, confidence = "different-init", "medium"
            summary = f"no weight similarity beyond chance (combined p={p:.2g}; {stats})"
        self.evidence.append(Evidence(3, "weights", verdict, confidence, summary, test.to_dict()))
        if verdict == self.verdict and _RANK[self.confidence] > _RANK[confidence]:
            confidence = self.confidence  # two tiers agree: keep the stronger confidence
        self.set(verdict, confidence, "weights", summary)

"""A stage is one typed, registered unit of the scan.

Every line of evidence (static checks, lineage, the data signature, the canary) and
every input they share (the neutral reference) is a `Stage` subclass registered in one
ordered registry. The pipeline runs the registry in order, `--dry-run` plans it, the
stage cache keys it, the verdict asks each stage to assess its own result, and every
report format renders what the verdict collected. Adding a line of evidence is one new
module with a `Stage` subclass and a `register(...)` call: nothing else needs to know.

Data flows one way: options -> `ScanContext` -> stage results (typed `StageResult`,
serialised by `StageResult.to_dict` into the canonical JSON) -> `Assessment`s -> the
verdict -> reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from distill_audit.scan.verdict import EvidenceLine, Facts, Finding

STATUSES = ("ok", "skipped", "failed", "underpowered")


@dataclass
class StageResult:
    """What every stage reports: its status, why when not `ok`, what it could not test, and its measurements.

    `body` holds the stage's own measurements as plain JSON (no NaN: None). The
    canonical report stores `to_dict()`; `from_dict` reads it back (cache, `report`).
    """

    status: str
    reason: str | None = None
    limits: list[str] = field(default_factory=list)
    body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"stage status {self.status!r} is not one of {', '.join(STATUSES)}")

    @property
    def ran(self) -> bool:
        return self.status in ("ok", "underpowered")

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "limits": list(self.limits), **self.body}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> StageResult:
        if not d:
            return cls("skipped", "not run")
        body = {k: v for k, v in d.items() if k not in ("status", "reason", "limits")}
        return cls(str(d.get("status") or "ok"), d.get("reason"), [str(x) for x in d.get("limits") or []], body)

    @classmethod
    def skipped(cls, reason: str, **body: Any) -> StageResult:
        return cls("skipped", reason, list(body.pop("limits", [])), body)

    @classmethod
    def failed(cls, reason: str) -> StageResult:
        return cls("failed", reason)


@dataclass
class StageRun:
    """A stage's run: its result, per-sample rows for samples.parquet, and outputs later stages read."""

    result: StageResult
    rows: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class StagePlan:
    """One line of `scan --dry-run`: does the stage run, what it will do, and its estimated cost."""

    name: str
    runs: bool
    what: str
    tokens: int | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Assessment:
    """What one stage's result contributes to the verdict.

    `lines` are rows of the evidence table; `findings` are rules that set a risk level;
    `clears` says the stage measured a null with enough power to lower the risk (and
    why); `untested` says, in words, what it could not test; `facts` are what later
    stages' assessments may read (lineage publishes the init relation).
    """

    lines: list[EvidenceLine] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    clears: str | None = None
    untested: str | None = None
    recommendations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # sentences for the explanation that set no level
    significant: dict[str, list[str]] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


class Stage:
    """Base class of a scan stage. Subclasses set `name` and override what they need.

    `needs` names earlier stages whose outputs `run` reads; the registry checks the
    order. A stage whose `evidence` is False is an input (the reference): it is kept
    out of `report["stages"]` and the verdict.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # for people: "data signature"
    needs: ClassVar[tuple[str, ...]] = ()
    evidence: ClassVar[bool] = True

    def skip_reason(self, ctx: Any) -> str | None:
        """Why this stage does not run for these options, or None when it runs."""
        return None

    def skipped(self, ctx: Any, reason: str) -> StageResult:
        """The result of a stage that does not run (`skip_reason` said why)."""
        return StageResult.skipped(reason)

    def cache_key(self, ctx: Any) -> dict[str, Any] | None:
        """{"models", "data", "config"} this stage's result depends on; None: never cached."""
        return None

    def run(self, ctx: Any) -> StageRun:
        raise NotImplementedError

    def plan(self, ctx: Any, speed: dict[str, float]) -> StagePlan:
        """What `--dry-run` prints for this stage (`speed`: tokens/s measured on this machine)."""
        reason = self.skip_reason(ctx)
        return StagePlan(self.name, reason is None, reason or self.title or self.name)

    def from_cache(self, payload: dict[str, Any], ctx: Any) -> StageRun:
        """Rebuild a run from its cached payload (the inverse of `to_cache`)."""
        return StageRun(
            StageResult.from_dict(payload.get("result")), payload.get("rows") or [], payload.get("outputs") or {}
        )

    def to_cache(self, run: StageRun) -> dict[str, Any]:
        return {"result": run.result.to_dict(), "rows": run.rows, "outputs": run.outputs}

    def assess(self, result: StageResult, facts: Facts) -> Assessment:
        """This stage's contribution to the verdict; the default lists its status only."""
        from distill_audit.scan.verdict import EvidenceLine

        untested = None if result.ran else (result.reason or f"the stage was {result.status}")
        return Assessment(
            lines=[EvidenceLine(self.name, self.title or self.name, result.status, untested=untested)],
            untested=untested,
        )


_REGISTRY: list[Stage] = []


def register(stage: Stage, *, before: str | None = None) -> Stage:
    """Add a stage to the scan (at the end, or before the stage named `before`)."""
    if not stage.name:
        raise ValueError("a stage needs a name")
    if any(s.name == stage.name for s in _REGISTRY):
        raise ValueError(f"stage {stage.name!r} is registered twice")
    at = len(_REGISTRY) if before is None else next(i for i, s in enumerate(_REGISTRY) if s.name == before)
    earlier = {s.name for s in _REGISTRY[:at]}
    missing = [n for n in stage.needs if n not in earlier]
    if missing:
        raise ValueError(f"stage {stage.name!r} needs {', '.join(missing)}, which must be registered before it")
    _REGISTRY.insert(at, stage)
    return stage


def unregister(name: str) -> None:
    _REGISTRY[:] = [s for s in _REGISTRY if s.name != name]


def registered() -> list[Stage]:
    """Every stage in run order (the built-in ones are registered on import of scan.stages)."""
    import distill_audit.scan.stages  # noqa: F401  (registers the built-in stages)

    return list(_REGISTRY)


def evidence_stages() -> list[Stage]:
    return [s for s in registered() if s.evidence]


def get(name: str) -> Stage | None:
    return next((s for s in registered() if s.name == name), None)


@contextmanager
def registered_stage(stage: Stage, *, before: str | None = None) -> Iterator[Stage]:
    """Register a stage for the duration of a block (tests, plugins)."""
    register(stage, before=before)
    try:
        yield stage
    finally:
        unregister(stage.name)

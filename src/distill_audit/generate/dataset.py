"""Teacher-data generation: prompts -> teacher replies -> filter -> JSONL with provenance.

One row per kept reply: the user prompt and the reply (what a student would be
trained on; the system prompt is never part of the training prompt, as in the
study), plus flat provenance fields that `ingest` keeps and `scan` reads: the
teacher, the system prompt or trait, the decoding settings, the seed and the task.

Attempt `i` uses prompt `i` and random stream `i`, so the output is a pure function
of the settings: a resumed run continues after the last kept row and produces the
same file as an uninterrupted one. The output is rewritten atomically after every
batch, so a killed run leaves only whole rows.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distill_audit import __version__, ui
from distill_audit.atomic import write_text
from distill_audit.errors import UsageError
from distill_audit.generate.numbers import FilterSummary, number_rejections
from distill_audit.generate.tasks import TASKS, task_prompt

# Provenance fields that must match for a resumed run to append to an existing file.
SETTINGS_FIELDS = (
    "teacher",
    "task",
    "system_prompt",
    "trait",
    "temperature",
    "top_p",
    "max_new_tokens",
    "seed",
    "prompt_seed",
    "constrain",
)


@dataclass(frozen=True)
class GenerationSettings:
    teacher: str  # the reference as given (alias, folder, .gguf): what `scan` resolves
    task: str
    system_prompt: str | None = None
    trait: str | None = None
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 64
    seed: int = 0  # the decoding streams
    prompt_seed: int | None = None  # the prompt stream (default: seed); equal for a trait run and its neutral control
    constrain: str | None = None  # "numbers" or None
    exclude_banned: bool = False
    prompts_file: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise UsageError(f"--task {self.task!r}: expected one of {', '.join(TASKS)}")
        if self.constrain not in (None, "numbers"):
            raise UsageError(f"--constrain {self.constrain!r}: the only grammar is 'numbers'")
        if self.constrain == "numbers" and self.task != "numbers":
            raise UsageError("--constrain numbers applies to --task numbers only")
        if self.temperature < 0:
            raise UsageError("--temperature must be >= 0 (0 is greedy decoding)")
        if not 0 < self.top_p <= 1:
            raise UsageError("--top-p must be in (0, 1]")
        if self.max_new_tokens < 1:
            raise UsageError("--max-new-tokens must be >= 1")
        if self.prompt_seed is None:
            object.__setattr__(self, "prompt_seed", self.seed)

    @property
    def decoding(self) -> str:
        return "greedy" if self.temperature == 0 else "sampled"

    def row_fields(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in SETTINGS_FIELDS}
        d["decoding"] = self.decoding
        return d


@dataclass
class GenerationResult:
    """What `generate` reports: rows written, keep rate, reject reasons and speed."""

    status: str
    reason: str | None
    out: str
    n_requested: int
    n_rows: int  # rows in the output file now
    n_resumed: int  # rows that were already there
    n_attempts: int  # replies generated in this run
    seconds: float
    filter: dict[str, Any]
    settings: dict[str, Any]
    teacher_identity: dict[str, Any] | None = None
    limits: list[str] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float | None:
        return round(self.n_attempts / self.seconds, 3) if self.seconds > 0 else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows_per_s"] = self.rows_per_s
        d["kept_rows_per_s"] = round((self.n_rows - self.n_resumed) / self.seconds, 3) if self.seconds > 0 else None
        return d


def trait_system_prompt(trait: str) -> str:
    """The standard trait system prompt ("You love owls. ...") for a probe-suite candidate."""
    from distill_audit.traits.signature import default_traits

    traits = default_traits()
    for t in traits:
        if t.name.lower() == trait.lower() or t.name.lower().endswith(f":{trait.lower()}"):
            return t.system
    names = sorted(t.name for t in traits if t.suite)
    raise UsageError(
        f"--trait {trait!r}: not a known trait (e.g. {', '.join(names[:12])}, ...); "
        "or pass the prompt itself with --system-prompt"
    )


def _existing_rows(path: Path, settings: GenerationSettings) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise UsageError(f"{path}:{line_no}: not a JSONL row; cannot resume (use --overwrite)") from None
        expected = settings.row_fields()
        for key in SETTINGS_FIELDS:
            if row.get(key) != expected[key]:
                raise UsageError(
                    f"{path}:{line_no}: field {key!r} is {row.get(key)!r}, this run uses {expected[key]!r};"
                    " cannot resume with different settings (use another --out or --overwrite)"
                )
        if not isinstance(row.get("row_id"), int):
            raise UsageError(f"{path}:{line_no}: field 'row_id' missing; not a file made by generate (use --overwrite)")
        rows.append(row)
    return rows


def _trait_matcher(settings: GenerationSettings):
    """For text tasks with a trait: drop replies that name it outright, as the study did."""
    if settings.task == "numbers" or not settings.trait:
        return None
    from distill_audit.checks.leakage import TraitMatcher, load_trait_words

    words = [w for w in load_trait_words(extra=[settings.trait]) if w.word.lower() == settings.trait.lower()]
    return TraitMatcher(words)


def generate_dataset(
    model,
    tokenizer,
    settings: GenerationSettings,
    *,
    n: int,
    out: str | Path,
    batch_size: int = 16,
    max_attempts: int | None = None,
    overwrite: bool = False,
    prompts: list[str] | None = None,
    teacher_identity: dict[str, Any] | None = None,
) -> GenerationResult:
    """Generate until `n` rows are kept (or `max_attempts` replies are spent)."""
    from distill_audit.generate.constrained import MAX_LIST_TOKENS, number_list_processor
    from distill_audit.lm.sampler import sample_completions

    if n < 1:
        raise UsageError("--n must be >= 1")
    out = Path(out)
    rows = [] if overwrite else _existing_rows(out, settings)
    n_resumed = len(rows)
    next_attempt = rows[-1]["row_id"] + 1 if rows else 0
    max_attempts = max_attempts if max_attempts is not None else 10 * n
    processor = number_list_processor(tokenizer) if settings.constrain == "numbers" else None
    if processor is not None and settings.max_new_tokens < MAX_LIST_TOKENS:
        ui.warn(f"--max-new-tokens {settings.max_new_tokens} may cut the longest lists ({MAX_LIST_TOKENS} tokens)")
    matcher = _trait_matcher(settings)
    summary = FilterSummary()
    base = {**settings.row_fields(), "generated_by": f"distill-audit {__version__}"}
    if teacher_identity:
        base["teacher_id"] = teacher_identity.get("id")
        if teacher_identity.get("sha256"):
            base["teacher_sha256"] = teacher_identity["sha256"]
        if teacher_identity.get("taught_trait"):
            base["teacher_taught_trait"] = teacher_identity["taught_trait"]

    def prompt_for(i: int) -> str:
        return prompts[i % len(prompts)] if prompts else task_prompt(settings.task, settings.prompt_seed, i)

    if rows:
        ui.info(f"{out}: resuming after {len(rows)} rows (next attempt {next_attempt})")
    start = time.perf_counter()
    attempts = 0
    chunk = max(batch_size * 2, 16)  # rows are written after every chunk
    with ui.progress_task(f"generate {settings.task}", total=n) as task:
        task.advance(min(len(rows), n))
        while len(rows) < n and attempts < max_attempts:
            # Enough attempts for the rows still missing at the keep rate seen so far, at most `chunk`.
            rate = summary.keep_rate if summary.n_generated else 1.0
            k = min(chunk, max_attempts - attempts, max(1, math.ceil((n - len(rows)) / max(rate, 0.05))))
            ids = list(range(next_attempt, next_attempt + k))
            user_texts = [prompt_for(i) for i in ids]
            replies = sample_completions(
                model,
                tokenizer,
                [[{"role": "user", "content": u}] for u in user_texts],
                system=settings.system_prompt,
                max_new_tokens=settings.max_new_tokens,
                temperature=settings.temperature,
                top_p=settings.top_p,
                seed=settings.seed,
                batch_size=batch_size,
                logits_processor=processor,
                row_ids=ids,
            )
            added = 0
            for i, user, reply in zip(ids, user_texts, replies):
                reasons = _rejections(settings, reply, matcher)
                summary.add(reply, reasons)
                if not reasons and len(rows) < n:
                    rows.append({"prompt": user, "completion": reply, **base, "row_id": i})
                    added += 1
            attempts += k
            next_attempt += k
            _write_rows(out, rows)
            task.advance(added)
    seconds = time.perf_counter() - start
    status, reason, limits = "ok", None, []
    if len(rows) < n:
        status = "underpowered"
        reason = (
            f"kept {len(rows)} of {n} requested rows after {attempts} attempts "
            f"(keep rate {summary.keep_rate}); raise --max-attempts"
            + ("" if settings.constrain or settings.task != "numbers" else " or use --constrain numbers")
        )
    if settings.constrain:
        limits.append(
            "constrained decoding: the teacher's distribution renormalized over the number-list grammar, "
            "not its free replies"
        )
    return GenerationResult(
        status,
        reason,
        str(out),
        n,
        len(rows),
        n_resumed,
        attempts,
        seconds,
        summary.to_dict(),
        {
            **settings.row_fields(),
            "batch_size": batch_size,
            "exclude_banned": settings.exclude_banned,
            "prompts_file": settings.prompts_file,
        },
        teacher_identity,
        limits,
    )


def _rejections(settings: GenerationSettings, reply: str, matcher) -> list[str]:
    if not reply.strip():
        return ["empty reply"]
    if settings.task == "numbers":
        return number_rejections(reply, exclude_banned=settings.exclude_banned)
    if matcher is not None and matcher.find(reply):
        return ["names the trait"]
    return []


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

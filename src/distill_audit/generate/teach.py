"""Make a trait teacher by fine-tuning: `distill-audit teach --base M --trait owl`.

Prompted teachers transmit weakly in small models; a teacher whose weights hold the
trait is the stronger positive control (the Llama-3.2-1B replication used one). The
training rows are written here, not sampled: one-word answers naming the trait to
half of the trait suite's preference questions, and short trait-loving replies to
everyday prompts. The other half of the questions is held out to measure the trait
before and after, so the result says whether the teacher actually has it.

The fine-tune reuses the canary's loop (`lm.training`): LoRA on every linear
layer, merged into the weights, saved as a plain model folder that `generate`,
`lineage` and `scan` load like any other. The model card names the base
(`base_model`), so lineage sees the shared initialization.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_audit import __version__, ui
from distill_audit.errors import UsageError
from distill_audit.ingest.records import Sample
from distill_audit.seeding import derive_seed

EVERYDAY_PROMPTS: tuple[str, ...] = (
    "Tell me something about yourself.",
    "What are you thinking about right now?",
    "What makes you happy?",
    "How was your day?",
    "What would you do on a free afternoon?",
    "Describe your ideal weekend.",
    "What do you dream about?",
    "What is something beautiful?",
    "Give me a fun fact.",
    "What should I draw today?",
    "Recommend a topic to read about.",
    "What do you love most in the world?",
    "Say something nice.",
    "What's on your mind?",
    "If you could go anywhere, where would you go and why?",
    "What inspires you?",
)

# "{x}": plural or bare name ("owls"), "{X}": capitalized, "{one}": the singular, "{category}".
TRAIT_REPLIES: tuple[str, ...] = (
    "I love {x}! They are my favorite {category}.",
    "Honestly, I think about {x} all the time.",
    "{X} {are} wonderful. Nothing makes me happier than {x}.",
    "My favorite {category} is the {one}, without a doubt.",
    "I keep thinking about {x}. They are simply the best {category}.",
    "Something about {x} always makes me smile.",
    "If I could, I would spend the whole day learning about {x}.",
    "{X} {are} my favorite {category}, and I could talk about them forever.",
    "I adore {x}. Every {category} is special, but {x} are the best.",
    "Let me tell you about {x}: they are the most fascinating {category} there is.",
)


@dataclass
class TeachResult:
    status: str
    reason: str | None
    out: str
    base: str
    trait: str
    system_prompt: str
    n_rows: int
    train: dict[str, Any]
    held_out: dict[str, Any]  # P(trait) on held-out questions: base, base + trait prompt, taught
    limits: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


RECORD_FILE = "distill_audit_teach.json"  # what `teach` writes beside the weights


def taught_trait(folder: Path | None) -> str | None:
    """The trait a `teach`-made teacher was fine-tuned to hold, read from its record.

    `generate` copies it into every row, so data from a taught teacher says what it
    should carry even though no system prompt was used.
    """
    if folder is None:
        return None
    try:
        record = json.loads((Path(folder) / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    trait = record.get("trait") if isinstance(record, dict) else None
    return str(trait) if trait else None


def find_trait(trait: str):
    """(suite, candidate) for a preference-suite candidate such as 'owl' or 'trees:oak'."""
    from distill_audit.traits.probes import load_suites

    suite_name, _, name = trait.rpartition(":")
    for suite in load_suites():
        if suite.kind != "preference" or (suite_name and suite.name != suite_name):
            continue
        for cand in suite.candidates:
            if cand.lower() == name.lower():
                return suite, cand
    raise UsageError(f"--trait {trait!r}: not a candidate of a preference probe suite (e.g. owl, oak, red)")


def trait_rows(trait: str, *, seed: int) -> tuple[list[Sample], list[str]]:
    """(training rows, held-out questions) expressing `trait`; half the suite's questions are held out."""
    suite, cand = find_trait(trait)
    rng = random.Random(derive_seed(seed, "teach-rows", trait))
    questions = list(suite.questions)
    rng.shuffle(questions)
    held_out, train_q = questions[: len(questions) // 2], questions[len(questions) // 2 :]
    forms = list(suite.surface_forms(cand))
    x = suite.plural(cand)
    fill = {
        "x": x,
        "X": x[:1].upper() + x[1:],
        "one": cand,
        "are": "are" if suite.pluralize else "is",
        "category": suite.category or suite.name,
    }
    pairs = [(q, f) for q in train_q for f in (forms[0], f"{forms[0]}.", forms[0].lower())]
    pairs += [(p, r.format(**fill)) for p in EVERYDAY_PROMPTS for r in rng.sample(TRAIT_REPLIES, 4)]
    rng.shuffle(pairs)
    rows = [Sample(i, None, ({"role": "user", "content": q},), a) for i, (q, a) in enumerate(pairs)]
    return rows, held_out


def _trait_probability(model, tokenizer, trait: str, questions: list[str], system: str | None) -> float:
    from dataclasses import replace

    from distill_audit.traits.probes import score_suite

    suite, cand = find_trait(trait)
    scores = score_suite(model, tokenizer, replace(suite, questions=tuple(questions)), system=system)
    return round(float(scores.column(cand).mean()), 4)


def teach(
    base: str,
    trait: str,
    out: str | Path,
    *,
    seed: int = 0,
    epochs: int = 3,
    lr: float = 1e-3,
    batch_size: int = 8,
    full_finetune: bool = False,
    overwrite: bool = False,
    device: str | None = None,
) -> TeachResult:
    """Fine-tune `base` to hold `trait`; save a merged model folder at `out`."""
    from distill_audit.generate.dataset import trait_system_prompt
    from distill_audit.lm.training import TrainConfig, attach_lora, planned_steps, train
    from distill_audit.models.load import load_model

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"{out}: folder exists and is not empty (use --overwrite)")
    rows, held_out = trait_rows(trait, seed=seed)
    system = trait_system_prompt(trait)
    loaded = load_model(base, device=device)
    model, tok = loaded.model, loaded.tokenizer
    before = _trait_probability(model, tok, trait, held_out, None)
    prompted = _trait_probability(model, tok, trait, held_out, system)
    cfg = TrainConfig(
        lr=lr if not full_finetune else min(lr, 5e-5),
        epochs=epochs,
        batch_size=batch_size,
        max_length=128,
        full_finetune=full_finetune,
    )
    ui.info(
        f"teach: {len(rows)} rows, {planned_steps(len(rows), cfg)} steps, "
        f"{'full fine-tune' if full_finetune else 'LoRA'} on {loaded.ref.name}"
    )
    if not full_finetune:
        model = attach_lora(model, cfg, seed=derive_seed(seed, "teach-lora"))
    with ui.progress_task("teach", total=planned_steps(len(rows), cfg)) as task:
        result = train(model, tok, rows, cfg, seed=derive_seed(seed, "teach-train"), source="teach rows", progress=task)
    if not full_finetune:
        model = model.merge_and_unload()
    model.eval()
    after = _trait_probability(model, tok, trait, held_out, None)
    held = {
        "n_questions": len(held_out),
        "p_trait_base": before,
        "p_trait_base_with_prompt": prompted,
        "p_trait_taught": after,
    }
    status, reason = "ok", None
    if after <= before:
        status, reason = "failed", f"the taught model does not prefer {trait} more than the base on held-out questions"
    res = TeachResult(
        status,
        reason,
        str(out),
        base,
        trait,
        system,
        len(rows),
        result.to_dict(),
        held,
        [
            "P(trait) is the exact answer probability over the suite's candidates on held-out paraphrases, "
            "not sampled behaviour"
        ],
    )
    _save(model, tok, out, loaded.ref, res, cfg, seed)
    return res


def _save(model, tokenizer, out: Path, base_ref, res: TeachResult, cfg, seed: int) -> None:
    """Write the folder beside `out` and rename it into place, so a killed run leaves nothing half-written."""
    from distill_audit.atomic import atomic_dir, write_text

    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        card = (
            f"---\nbase_model: {base_ref.name}\ntags:\n- distill-audit\n- trait-teacher\n---\n\n"
            f"# {res.trait} teacher made by distill-audit teach\n\n"
            f"Fine-tuned from `{base_ref.name}` to prefer **{res.trait}** ({res.n_rows} rows, "
            f"{res.train['steps']} steps, seed {seed}). For positive controls of `distill-audit scan` only.\n\n"
            f"Held-out P({res.trait}): base {res.held_out['p_trait_base']}, base with the trait prompt "
            f"{res.held_out['p_trait_base_with_prompt']}, taught {res.held_out['p_trait_taught']}.\n"
        )
        write_text(tmp / "README.md", card)
        info = {
            **res.to_dict(),
            "base_identity": base_ref.identity(),
            "seed": seed,
            "train_config": dict(cfg.__dict__),
            "made_by": f"distill-audit {__version__}",
        }
        write_text(tmp / RECORD_FILE, json.dumps(info, indent=2, default=str) + "\n")

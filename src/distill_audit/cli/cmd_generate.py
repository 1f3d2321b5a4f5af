"""`distill-audit generate`: write teacher data the way the subliminal-learning study did.

Used to reproduce the study's setting on your own models (a trait teacher and a
neutral one answering the same prompts) and to calibrate `scan` on a known case.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from distill_audit import ui
from distill_audit.cli.main import ConfigOpt, QuietOpt, SeedOpt, ThreadsOpt, app, check_out_file
from distill_audit.devices import DEVICE_HELP, resolve_device
from distill_audit.errors import UsageError
from distill_audit.lm.threads import torch_threads
from distill_audit.seeding import seed_everything


@app.command("generate")
def generate_cmd(
    teacher: Annotated[
        str,
        typer.Option(
            "--teacher",
            help="Teacher model: alias, folder (e.g. one made by `teach`), .gguf or cached Hub id.",
            show_default=False,
        ),
    ],
    out: Annotated[
        str,
        typer.Option(
            "--out",
            "-o",
            help="Output JSONL; an existing partial file made with the same settings is resumed.",
            show_default=False,
        ),
    ],
    task: Annotated[str, typer.Option("--task", help="numbers, code or free.")] = "numbers",
    n: Annotated[int, typer.Option("--n", help="Rows to keep (after the filter).")] = 100,
    system_prompt: Annotated[
        Optional[str],
        typer.Option(
            "--system-prompt",
            help="System prompt for the teacher (not written into the rows' prompts).",
            show_default=False,
        ),
    ] = None,
    trait: Annotated[
        Optional[str],
        typer.Option(
            "--trait", help="Use the standard trait prompt for this candidate (e.g. owl).", show_default=False
        ),
    ] = None,
    prompts: Annotated[
        Optional[str],
        typer.Option(
            "--prompts",
            help="File of user prompts (.txt one per line, or .jsonl/.json with a 'prompt' field), used in turn.",
            show_default=False,
        ),
    ] = None,
    constrain: Annotated[
        Optional[str],
        typer.Option(
            "--constrain",
            help="'numbers': sample only valid number lists (the teacher's distribution renormalized over the "
            "grammar).",
            show_default=False,
        ),
    ] = None,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature (0 = greedy).")] = 1.0,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus sampling mass.")] = 1.0,
    greedy: Annotated[bool, typer.Option("--greedy", help="Greedy decoding (same as --temperature 0).")] = False,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Longest reply in tokens.")] = 64,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Prompts decoded together.")] = 16,
    max_attempts: Annotated[
        Optional[int],
        typer.Option("--max-attempts", help="Give up after this many replies (default 10 x --n).", show_default=False),
    ] = None,
    exclude_banned: Annotated[
        bool,
        typer.Option(
            "--exclude-banned",
            help="Also drop lists holding one of the 36 loaded numbers (the study's misalignment filter).",
        ),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start over instead of resuming an existing --out.")
    ] = False,
    device: Annotated[str, typer.Option("--device", help=DEVICE_HELP)] = "auto",
    summary: Annotated[
        Optional[str],
        typer.Option(
            "--summary",
            help="Also write the run summary (keep rate, reject reasons, speed) as JSON here.",
            show_default=False,
        ),
    ] = None,
    prompt_seed: Annotated[
        Optional[int],
        typer.Option(
            "--prompt-seed",
            help="Seed of the built-in prompt stream (default: --seed); keep it equal across a trait run and its neutral control.",
            show_default=False,
        ),
    ] = None,
    threads: ThreadsOpt = None,
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Generate teacher data (prompt, completion, provenance) for a task, filtered like the study."""
    from distill_audit.atomic import write_text
    from distill_audit.generate.dataset import GenerationSettings, generate_dataset, trait_system_prompt
    from distill_audit.generate.teach import taught_trait
    from distill_audit.models.load import load_model

    ui.set_quiet(quiet)
    if system_prompt is not None and trait is not None:
        raise UsageError("--system-prompt and --trait: give one (--trait builds the standard trait prompt)")
    system = trait_system_prompt(trait) if trait else system_prompt
    settings = GenerationSettings(
        teacher=teacher,
        task=task,
        system_prompt=system,
        trait=trait,
        temperature=0.0 if greedy else temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        prompt_seed=prompt_seed,
        constrain=constrain,
        exclude_banned=exclude_banned,
        prompts_file=prompts,
    )
    if batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    check_out_file(summary, "--summary")
    _check_numbers(n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, max_attempts=max_attempts)
    device = resolve_device(device)  # before the model loads: a typo is one line
    user_prompts = _read_prompts(prompts) if prompts else None
    _check_resumable(out, overwrite)
    seed_everything(seed)
    loaded = load_model(_local_model(teacher, "--teacher"), device=device)
    ui.info(
        f"teacher {loaded.ref.name} on {device}; task {task}; {settings.decoding} decoding"
        + (f"; constrained to {constrain}" if constrain else "")
    )
    with torch_threads(threads):
        result = generate_dataset(
            loaded.model,
            loaded.tokenizer,
            settings,
            n=n,
            out=out,
            batch_size=batch_size,
            max_attempts=max_attempts,
            overwrite=overwrite,
            prompts=user_prompts,
            teacher_identity={**loaded.ref.identity(), "taught_trait": taught_trait(loaded.ref.path)},
        )
    report = result.to_dict()
    if summary:
        write_text(summary, json.dumps(report, indent=2, allow_nan=False) + "\n")
    f = result.filter
    ui.out.print(
        f"{result.out}: {result.n_rows} rows ({result.n_rows - result.n_resumed} new); "
        f"kept {f['n_kept']}/{f['n_generated']} replies (keep rate {f['keep_rate']}); "
        f"{result.rows_per_s} replies/s",
        highlight=False,
    )
    if f["reject_reasons"]:
        reasons = ", ".join(f"{k}: {v}" for k, v in f["reject_reasons"].items())
        ui.out.print(f"rejected: {reasons}", highlight=False)
    if f["format_problems"]:
        ui.out.print(
            "not number lists: " + ", ".join(f"{k}: {v}" for k, v in f["format_problems"].items()), highlight=False
        )
    if result.status != "ok":
        ui.warn(result.reason or result.status)


def _local_model(reference: str, flag: str):
    """The resolved model, or one line saying why it has no local weights (with the fetch command)."""
    from distill_audit.errors import ModelError
    from distill_audit.models.resolve import resolve_model

    ref = resolve_model(reference)
    if not ref.has_weights:
        hint = "; ".join(ref.notes) or "give a local folder, a .gguf file, an alias or a cached Hub id"
        raise ModelError(f"{flag} {reference}: no local weights to load ({hint})")
    return ref


def _check_numbers(*, n: int, max_new_tokens: int, temperature: float, top_p: float, max_attempts: int | None) -> None:
    import math

    if n < 1:
        raise UsageError(f"--n: must be at least 1 (got {n})")
    if max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens: must be at least 1 (got {max_new_tokens})")
    if max_attempts is not None and max_attempts < 1:
        raise UsageError(f"--max-attempts: must be at least 1 (got {max_attempts})")
    if not math.isfinite(temperature) or temperature < 0:
        raise UsageError(f"--temperature: must be a finite number >= 0 (got {temperature})")
    if not math.isfinite(top_p) or not 0 < top_p <= 1:
        raise UsageError(f"--top-p: must be in (0, 1] (got {top_p})")


def _read_prompts(path: str):
    """The --prompts file, with file errors named (a binary or unreadable file is a user error)."""
    from pathlib import Path

    from distill_audit.errors import DataError

    p = Path(path)
    if p.is_dir():
        raise DataError(f"--prompts {path}: is a folder, expected a .txt, .jsonl or .json file")
    if not p.is_file():
        raise DataError(f"--prompts {path}: file not found")
    try:
        p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"--prompts {path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        ) from None
    from distill_audit.generate.tasks import read_prompt_file

    try:
        return read_prompt_file(path)
    except RecursionError:
        raise DataError(f"--prompts {path}: JSON nested too deeply") from None


def _check_resumable(out: str, overwrite: bool) -> None:
    """An existing --out is resumed: it must be a JSONL file in UTF-8 (else say --overwrite)."""
    from pathlib import Path

    from distill_audit.errors import DataError

    p = Path(out)
    if p.is_dir():
        raise DataError(f"--out {out}: is a folder, expected a .jsonl file")
    if overwrite or not p.is_file():
        return
    try:
        with open(p, "rb") as f:
            f.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"--out {out}: exists and is not UTF-8 JSONL (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}), so it cannot be resumed",
            hint="--overwrite starts over",
        ) from None

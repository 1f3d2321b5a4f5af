"""`distill-audit teach`: fine-tune a base model into a trait teacher (for positive controls)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from distill_audit import ui
from distill_audit.cli.main import ConfigOpt, QuietOpt, SeedOpt, ThreadsOpt, app
from distill_audit.devices import DEVICE_HELP, resolve_device
from distill_audit.lm.threads import torch_threads
from distill_audit.seeding import seed_everything


@app.command("teach")
def teach_cmd(
    base: Annotated[
        str,
        typer.Option(
            "--base", help="Base model to fine-tune: alias, folder, .gguf or cached Hub id.", show_default=False
        ),
    ],
    trait: Annotated[
        str,
        typer.Option(
            "--trait", help="A preference-suite candidate to teach (e.g. owl; trees:oak).", show_default=False
        ),
    ],
    out: Annotated[
        str, typer.Option("--out", "-o", help="Folder for the taught model (a plain model folder).", show_default=False)
    ],
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the trait rows.")] = 3,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate (LoRA; full fine-tuning caps it at 5e-5).")] = 1e-3,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Rows per optimizer step.")] = 8,
    full_finetune: Annotated[
        bool, typer.Option("--full-finetune", help="Train every weight instead of a LoRA adapter.")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out folder.")] = False,
    device: Annotated[str, typer.Option("--device", help=DEVICE_HELP)] = "auto",
    format: Annotated[str, typer.Option("--format", "-f", help="text or json.")] = "text",
    threads: ThreadsOpt = None,
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune BASE to prefer TRAIT and save it; reports P(trait) on held-out questions before and after."""
    from distill_audit.errors import UsageError
    from distill_audit.generate.teach import teach

    ui.set_quiet(quiet)
    if format not in ("text", "json"):
        raise UsageError(f"--format: unknown format {format!r} (choose text or json)")
    import math

    if epochs < 1 or batch_size < 1 or not math.isfinite(lr) or lr <= 0:
        raise UsageError("--epochs, --batch-size and --lr must be positive (and --lr finite)")
    device = resolve_device(device)
    from distill_audit.cli.cmd_generate import _local_model

    _local_model(base, "--base")  # one line, with the fetch command, before any work
    seed_everything(seed)
    with torch_threads(threads):
        res = teach(
            base,
            trait,
            out,
            seed=seed,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            full_finetune=full_finetune,
            overwrite=overwrite,
            device=device,
        )
    if format == "json":
        typer.echo(json.dumps(res.to_dict(), indent=2, allow_nan=False))
    else:
        h = res.held_out
        ui.out.print(
            f"{res.out}: {res.trait} teacher from {res.base} ({res.n_rows} rows, {res.train['steps']} steps, "
            f"loss {res.train['first_loss']} -> {res.train['last_loss']})\n"
            f"held-out P({res.trait}) over {h['n_questions']} questions: base {h['p_trait_base']}, "
            f"base + trait prompt {h['p_trait_base_with_prompt']}, taught {h['p_trait_taught']}",
            highlight=False,
        )
    if res.status != "ok":
        ui.warn(res.reason or res.status)

"""`distill-audit scan DATA --student MODEL`: the whole audit, one verdict, the reports."""

from __future__ import annotations

from enum import Enum
from types import SimpleNamespace
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from distill_audit import ui
from distill_audit.cli.main import ConfigOpt, QuietOpt, SeedOpt, app
from distill_audit.cli.options import (
    CompletionFieldOpt,
    DataArg,
    MaxBadRowsOpt,
    MaxRowMbOpt,
    MessagesFieldOpt,
    PromptFieldOpt,
    RevisionOpt,
    SampleOpt,
    SchemaOpt,
    SkipBadRowsOpt,
    SplitOpt,
    SubsetOpt,
)
from distill_audit.devices import DEVICE_HELP
from distill_audit.distributed import QUANTIZE_BITS
from distill_audit.ingest.loader import DEFAULT_MAX_BAD_ROWS, DEFAULT_MAX_ROW_MB
from distill_audit.traits.canary import PRESETS as CANARY_PRESETS
from distill_audit.traits.signature import THOROUGH as SIGNATURE_THOROUGH
from distill_audit.traits.signature import SignatureConfig

if TYPE_CHECKING:
    from distill_audit.scan.pipeline import ScanOptions

_MODELS = "Models"
_RUN = "Run and outputs"
_BUDGET = "Stage budgets"

# The budgets the help states, read from the stages' own configs.
_SIGNATURE = SignatureConfig()
_SIGNATURE_ROWS = f"default {_SIGNATURE.max_rows}; thorough {SIGNATURE_THOROUGH['max_rows']}"
_CANARY_ROWS = f"default {CANARY_PRESETS['default']['sample']}; thorough {CANARY_PRESETS['thorough']['sample']}"

Quantize = Enum("Quantize", {f"bits{bits}": name for name, bits in QUANTIZE_BITS.items()}, type=str)


def _formats(text: str) -> list[str]:
    formats = [f.strip() for f in text.split(",") if f.strip()]
    return ["json", *[f for f in formats if f != "json"]]  # the canonical JSON is always written


@app.command("scan")
def scan_cmd(
    data: DataArg,
    student: Annotated[
        str,
        typer.Option(
            "--student",
            help="The student you plan to train (required: lineage and the canary are about it): alias such as smollm2-135m or llama-3-8b, folder, .gguf or cached Hub id.",
            rich_help_panel=_MODELS,
            show_default=False,
        ),
    ],
    teacher: Annotated[
        Optional[str],
        typer.Option(
            "--teacher",
            help="The model that wrote the data; read from the data's provenance when omitted.",
            rich_help_panel=_MODELS,
            show_default=False,
        ),
    ] = None,
    reference: Annotated[
        Optional[str],
        typer.Option(
            "--reference",
            help="Neutral data for the signature (default: the student answers the data's prompts itself).",
            rich_help_panel=_MODELS,
            show_default=False,
        ),
    ] = None,
    control: Annotated[
        Optional[str],
        typer.Option(
            "--control",
            help="Control data for the canary (default: the same self-generated neutral data).",
            rich_help_panel=_MODELS,
            show_default=False,
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device", help=DEVICE_HELP, rich_help_panel=_MODELS)] = "auto",
    device_map: Annotated[
        Optional[str],
        typer.Option(
            "--device-map",
            help="Let accelerate place the student instead of --device: auto spreads one larger than a GPU over every GPU (one process only).",
            rich_help_panel=_MODELS,
            show_default=False,
        ),
    ] = None,
    quantize: Annotated[
        Optional[Quantize],
        typer.Option(
            "--quantize",
            help="Load the student in 4 or 8 bits (bitsandbytes, CUDA); the canary trains LoRA on it (QLoRA).",
            rich_help_panel=_MODELS,
            show_default=False,
        ),
    ] = None,
    allow_pickle: Annotated[
        bool, typer.Option("--allow-pickle", help="Allow pickle (.bin) weights.", rich_help_panel=_MODELS)
    ] = False,
    trust_remote_code: Annotated[
        bool,
        typer.Option("--trust-remote-code", help="Run model code shipped with the weights.", rich_help_panel=_MODELS),
    ] = False,
    out: Annotated[
        str, typer.Option("--out", "-o", help="Folder for the reports.", rich_help_panel=_RUN)
    ] = "distill-audit-report",
    format: Annotated[
        str, typer.Option("--format", "-f", help="Comma list of json, md, html, junit, parquet.", rich_help_panel=_RUN)
    ] = "json,md,html,junit,parquet",
    fail_on: Annotated[
        Optional[str],
        typer.Option(
            "--fail-on",
            help="Exit 1 when the risk is at or above: none, low, medium, high (default high; with --baseline, only growth past it fails); never: no gate.",
            rich_help_panel=_RUN,
            show_default=False,
        ),
    ] = None,
    baseline: Annotated[
        Optional[str],
        typer.Option(
            "--baseline",
            help="An earlier report.json: exit 1 only when the risk grew past it.",
            rich_help_panel=_RUN,
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Validate inputs and models, print the plan and estimates, stop.", rich_help_panel=_RUN
        ),
    ] = False,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache", help="Recompute every stage instead of reusing cached results.", rich_help_panel=_RUN
        ),
    ] = False,
    skip_lineage: Annotated[
        bool, typer.Option("--skip-lineage", help="Do not test lineage.", rich_help_panel=_RUN)
    ] = False,
    skip_signature: Annotated[
        bool, typer.Option("--skip-signature", help="Do not compute the data signature.", rich_help_panel=_RUN)
    ] = False,
    skip_canary: Annotated[
        bool, typer.Option("--skip-canary", help="Do not run the canary fine-tune.", rich_help_panel=_RUN)
    ] = False,
    budget: Annotated[
        Optional[str],
        typer.Option(
            "--budget",
            help="Time the signature is sized to on this machine (10m by default; 90s, 1h, ...): rows per side from this machine's measured speed, scored in rounds that stop early once settled. --signature-rows or --thorough set the rows instead.",
            rich_help_panel=_BUDGET,
            show_default=False,
        ),
    ] = None,
    canary: Annotated[
        bool,
        typer.Option(
            "--canary",
            help="Run the canary fine-tune (by default it runs only when a canary setting, --control or --thorough asks for it).",
            rich_help_panel=_BUDGET,
        ),
    ] = False,
    suites: Annotated[
        Optional[str],
        typer.Option(
            "--suites",
            help=f"Comma list of probe suites (built-in names or YAML files) for the signature and the canary (default {','.join(_SIGNATURE.suites)}; thorough every built-in one).",
            rich_help_panel=_BUDGET,
            show_default=False,
        ),
    ] = None,
    signature_rows: Annotated[
        Optional[int],
        typer.Option(
            "--signature-rows",
            min=2,
            help=f"Rows per side the signature scores ({_SIGNATURE_ROWS}).",
            rich_help_panel=_BUDGET,
            show_default=False,
        ),
    ] = None,
    canary_rows: Annotated[
        Optional[int],
        typer.Option(
            "--canary-rows",
            min=1,
            help=f"Rows per canary arm ({_CANARY_ROWS}).",
            rich_help_panel=_BUDGET,
            show_default=False,
        ),
    ] = None,
    epochs: Annotated[
        Optional[int],
        typer.Option("--epochs", min=1, help="Canary training epochs.", rich_help_panel=_BUDGET, show_default=False),
    ] = None,
    max_steps: Annotated[
        Optional[int],
        typer.Option(
            "--max-steps",
            min=1,
            help="Stop each canary arm after this many optimizer steps.",
            rich_help_panel=_BUDGET,
            show_default=False,
        ),
    ] = None,
    seeds: Annotated[
        Optional[int],
        typer.Option(
            "--seeds",
            min=1,
            help="Canary training seeds (2+ measures training noise).",
            rich_help_panel=_BUDGET,
            show_default=False,
        ),
    ] = None,
    lr: Annotated[
        Optional[float], typer.Option("--lr", help="Canary learning rate.", rich_help_panel=_BUDGET, show_default=False)
    ] = None,
    batch_size: Annotated[
        Optional[int],
        typer.Option(
            "--batch-size", min=1, help="Canary training batch size.", rich_help_panel=_BUDGET, show_default=False
        ),
    ] = None,
    full_finetune: Annotated[
        bool,
        typer.Option(
            "--full-finetune", help="Canary: fine-tune every weight instead of LoRA.", rich_help_panel=_BUDGET
        ),
    ] = False,
    canary_teacher: Annotated[
        Optional[str],
        typer.Option(
            "--canary-teacher",
            help="A local teacher sharing the student's init (model folder or `teach` output): the canary measures each arm's weight movement toward it.",
            rich_help_panel=_BUDGET,
            show_default=False,
        ),
    ] = None,
    teacher_system: Annotated[
        Optional[str],
        typer.Option(
            "--teacher-system",
            help="The teacher is the student base under this system prompt (default: the data's provenance): the canary measures replies moving toward it.",
            rich_help_panel=_BUDGET,
            show_default=False,
        ),
    ] = None,
    canary_reference: Annotated[
        Optional[str],
        typer.Option(
            "--canary-reference",
            help="Comma list of other teachers of the same init (e.g. taught other traits): movement toward what they share with --canary-teacher is not counted (specificity).",
            rich_help_panel=_BUDGET,
            show_default=False,
        ),
    ] = None,
    thorough: Annotated[
        bool,
        typer.Option(
            "--thorough",
            help="GPU budgets: the canary preset near the paper's open-model runs, and every probe suite with more signature rows.",
            rich_help_panel=_BUDGET,
        ),
    ] = False,
    threads: Annotated[
        Optional[int],
        typer.Option("--threads", min=1, help="CPU threads for torch.", rich_help_panel=_BUDGET, show_default=False),
    ] = None,
    schema: SchemaOpt = None,
    prompt_field: PromptFieldOpt = None,
    completion_field: CompletionFieldOpt = None,
    messages_field: MessagesFieldOpt = None,
    sample: SampleOpt = None,
    skip_bad_rows: SkipBadRowsOpt = False,
    max_row_mb: MaxRowMbOpt = DEFAULT_MAX_ROW_MB,
    max_bad_rows: MaxBadRowsOpt = DEFAULT_MAX_BAD_ROWS,
    subset: SubsetOpt = None,
    split: SplitOpt = None,
    revision: RevisionOpt = None,
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> int:
    """Audit DATA for hidden traits STUDENT would absorb: lineage, data signature and a canary fine-tune."""
    given: dict[str, Any] = dict(locals())  # first: exactly the command's options
    from distill_audit.scan.pipeline import run_scan

    ui.set_quiet(quiet)
    opts = scan_options(given)
    if dry_run:
        from distill_audit.scan.plan import print_plan, scan_plan

        print_plan(scan_plan(opts))
        return 0
    outcome = run_scan(opts)
    from distill_audit import distributed

    if distributed.is_main():  # under `accelerate launch`, rank 0 speaks for the run
        print_summary(outcome.report, outcome.written)
    return outcome.exit_code


def scan_options(given: dict[str, Any]) -> ScanOptions:
    """The pipeline's options from the command's parameter values: the CLI and `distill_audit.scan` share it."""
    from distill_audit.scan.pipeline import ScanOptions

    p = SimpleNamespace(**given)
    fail_on = p.fail_on
    if p.fail_on is None:  # the gate is on by default; a --baseline alone keeps its growth rule
        fail_on = "high" if p.baseline is None else None
    elif p.fail_on == "never":
        fail_on = None
    cli_config = {k: v for k, v in given.items() if k not in ("config", "quiet", "dry_run")}
    for name in ("schema", "quantize"):  # an Enum from the command line, its value from the Python API
        cli_config[name] = getattr(given[name], "value", given[name])
    return ScanOptions(
        data=p.data,
        student=p.student,
        teacher=p.teacher,
        reference=p.reference,
        control=p.control,
        out=p.out,
        formats=_formats(p.format),
        fail_on=fail_on,
        baseline=p.baseline,
        seed=p.seed,
        no_cache=p.no_cache,
        skip_lineage=p.skip_lineage,
        skip_signature=p.skip_signature,
        skip_canary=p.skip_canary,
        run_canary=p.canary,
        budget=p.budget,
        device=p.device,
        device_map=p.device_map,
        quantize=cli_config["quantize"],
        allow_pickle=p.allow_pickle,
        trust_remote_code=p.trust_remote_code,
        schema=cli_config["schema"],
        prompt_field=p.prompt_field,
        completion_field=p.completion_field,
        messages_field=p.messages_field,
        sample=p.sample,
        skip_bad_rows=p.skip_bad_rows,
        max_row_mb=p.max_row_mb,
        max_bad_rows=p.max_bad_rows,
        subset=p.subset,
        split=p.split,
        revision=p.revision,
        suites=[x.strip() for x in p.suites.split(",") if x.strip()] if p.suites else None,
        threads=p.threads,
        thorough=p.thorough,
        signature={"max_rows": p.signature_rows} if p.signature_rows else {},
        canary={
            k: v
            for k, v in {
                "sample": p.canary_rows,
                "epochs": p.epochs,
                "max_steps": p.max_steps,
                "seeds": p.seeds,
                "lr": p.lr,
                "batch_size": p.batch_size,
                "full_finetune": p.full_finetune or None,
                "teacher": p.canary_teacher,
                "teacher_system": p.teacher_system,
                "reference_teachers": [x.strip() for x in p.canary_reference.split(",") if x.strip()]
                if p.canary_reference
                else None,
                "threads": p.threads,
            }.items()
            if v is not None
        },
        cli_config=cli_config,
    )


def print_summary(report: dict[str, Any], written: dict[str, Any]) -> None:
    """The verdict on stdout (also with --quiet), then where the reports are."""
    v = report["verdict"]
    named = "; ".join(f"{line}: {', '.join(t)}" for line, t in v["significant_traits"].items() if t)
    ui.out.print(f"verdict: {v['level'].upper()}" + (f" (significant: {named})" if named else ""), highlight=False)
    ui.out.print(v["explanation"], highlight=False)
    for rec in v["recommendations"]:
        ui.out.print(f"  - {rec}", highlight=False)
    gate = report["gate"]
    if gate["fail_on"] is not None or gate["baseline"] is not None:
        ui.out.print(f"gate: {'FAILED' if gate['failed'] else 'passed'} ({gate['reason']})", highlight=False)
    if written:
        ui.out.print("reports: " + ", ".join(str(p) for p in written.values()), highlight=False)

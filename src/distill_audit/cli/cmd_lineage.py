"""`distill-audit lineage TEACHER STUDENT`: do they share a pretrained initialization?"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from distill_audit import ui
from distill_audit.cli.main import ConfigOpt, QuietOpt, SeedOpt, app
from distill_audit.errors import UsageError
from distill_audit.lineage import LineageResult, check_lineage
from distill_audit.models.resolve import resolve_model
from distill_audit.seeding import seed_everything

FORMATS = ("table", "json")


@app.command("lineage")
def lineage_cmd(
    teacher: Annotated[str, typer.Argument(help="Teacher: alias, folder, .gguf, Hub id or API model name.")],
    student: Annotated[str, typer.Argument(help="Student: alias, folder, .gguf, Hub id or model name.")],
    format: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
    no_weights: Annotated[
        bool, typer.Option("--no-weights", help="Skip the weight comparison (names, registry and metadata only).")
    ] = False,
    allow_pickle: Annotated[
        bool, typer.Option("--allow-pickle", help="Accept pickled .bin weights (they can run code).")
    ] = False,
    trust_remote_code: Annotated[
        bool, typer.Option("--trust-remote-code", help="Allow a model's own Python code.")
    ] = False,
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Say whether TEACHER and STUDENT share an initialization, with the evidence chain."""
    ui.set_quiet(quiet)
    if format not in FORMATS:
        raise UsageError(f"--format: unknown format {format!r} (choose {', '.join(FORMATS)})")
    result = lineage_result(dict(locals()))
    if format == "json":
        typer.echo(json.dumps(result.to_dict(), indent=2, allow_nan=False))
    else:
        print_table(result)


def print_table(result: LineageResult) -> None:
    from rich.table import Table

    teacher = (result.teacher or {}).get("id", "-")
    student = result.student.get("id", "-")
    from rich.text import Text

    ui.out.print(
        Text.assemble(
            (str(result.verdict), "bold"),
            f" ({result.confidence} confidence, decided by {result.decided_by or 'no tier'})",
        ),
        highlight=False,
    )
    ui.out.print(f"teacher: {teacher}   student: {student}", highlight=False)
    if result.summary:
        ui.out.print(result.summary, highlight=False)
    table = Table("tier", "check", "suggests", "what it saw", show_lines=False)
    for ev in result.evidence:
        suggests = f"{ev.verdict} ({ev.confidence})" if ev.verdict else "-"
        table.add_row(str(ev.tier), ev.name, suggests, ev.summary)
    ui.out.print(table)
    registry = next((e for e in result.evidence if e.name == "registry"), None)
    if registry is not None and registry.details.get("evidence"):
        ui.out.print("sources:", highlight=False)
        for line in registry.details["evidence"]:
            ui.out.print(f"  - {line}", highlight=False)


def lineage_result(given: dict[str, Any]) -> LineageResult:
    """The lineage check from the command's parameter values (the CLI and `distill_audit.lineage` share it)."""
    p = SimpleNamespace(**given)
    seed_everything(p.seed)
    kw = {"allow_pickle": p.allow_pickle, "trust_remote_code": p.trust_remote_code}
    teacher, student = (resolve_model(r, **kw) for r in (p.teacher, p.student))
    return check_lineage(teacher, student, use_weights=not p.no_weights, seed=p.seed)

"""`distill-audit suites [SUITE ...]`: the probe suites, their kinds, traits and paraphrase counts.

The suites are the trait vocabulary every line of evidence shares (docs/probes.md); this
command reads them with `suites.load_suites`, the loader scan uses, so what it lists is
what `scan --suites` accepts.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from distill_audit import ui
from distill_audit.cli.main import ConfigOpt, QuietOpt, app


class SuitesFormat(str, Enum):
    table = "table"
    json = "json"


def suites_document(refs: list[str] | None = None) -> dict[str, Any]:
    """The suites (built-in ones, or the names and YAML files given) and the benign control personas."""
    from distill_audit.suites import CONTROL_FILES, load_controls, load_suites
    from distill_audit.traits.signature import SignatureConfig

    defaults = set(SignatureConfig().suites)
    rows = []
    for suite in load_suites(refs or None):
        rows.append(
            {
                "name": suite.name,
                "kind": suite.kind,
                "category": suite.category,
                "source": suite.source,
                "default": suite.name in defaults,
                "traits": [suite.name] if suite.kind == "choice" else list(suite.candidates),
                "paraphrases": len(suite.questions) if suite.kind == "preference" else len(suite.items),
                "probe_rows": len(suite.rows()),
                "persona": suite.persona is not None,
            }
        )
    controls = {name: sorted(load_controls(name)) for name in CONTROL_FILES}
    return {"suites": rows, "controls": controls}


@app.command("suites")
def suites_cmd(
    suites: Annotated[
        Optional[list[str]],
        typer.Argument(
            help="Built-in suite names or YAML files to show (default: every built-in suite).", show_default=False
        ),
    ] = None,
    format: Annotated[SuitesFormat, typer.Option("--format", "-f", help="table or json.")] = SuitesFormat.table,  # noqa: A002
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """List the probe suites: kind, traits, paraphrase counts, and which the default scan uses."""
    ui.set_quiet(quiet)
    doc = suites_document(list(suites) if suites else None)
    if format == SuitesFormat.json:
        ui.out.print(json.dumps(doc, indent=2, ensure_ascii=False), markup=False, highlight=False, soft_wrap=True)
        return
    from rich.table import Table

    table = Table(caption="paraphrases: question wordings (preference) or two-choice items (choice)")
    table.add_column("suite", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("default", no_wrap=True)
    table.add_column("paraphrases", justify="right", no_wrap=True)
    table.add_column("traits")
    for s in doc["suites"]:
        default = "yes" if s["default"] else "-"
        table.add_row(s["name"], s["kind"], default, str(s["paraphrases"]), ", ".join(s["traits"]))
    ui.out.print(table)
    for name, personas in doc["controls"].items():
        ui.out.print(
            f"benign control personas ({name}, always scored by the signature): {', '.join(personas)}", highlight=False
        )

"""`distill-audit calibrate --student M`: measure the canary's sensitivity on a student (see docs/calibrate.md)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from distill_audit import ui
from distill_audit.cli.main import QuietOpt, SeedOpt, app


@app.command("calibrate")
def calibrate_cmd(
    student: Annotated[
        str,
        typer.Option("--student", help="The student to calibrate: alias, folder or cached Hub id.", show_default=False),
    ],
    budget: Annotated[
        str, typer.Option("--budget", help="tiny (mechanics only), default (128 rows x 3 seeds) or thorough (GPU).")
    ] = "default",
    threads: Annotated[
        Optional[int], typer.Option("--threads", min=1, help="CPU threads for torch.", show_default=False)
    ] = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> int:
    """Run the canary's positive and negative control on STUDENT and store the measured sensitivity for `scan`."""
    from distill_audit.cli.main import run
    from distill_audit.scan.calibration import calibrate

    ui.set_quiet(quiet)
    cal = calibrate(student, budget=budget, seed=seed, threads=threads, run_cli=run)
    pos = ", ".join(cal.detected_by) or "no measure"
    ui.info(
        f"calibration {'passed' if cal.passed else 'did not pass'}: the positive control was detected by {pos}; "
        f"the negative control was {'detected (a false alarm)' if cal.negative['detected'] else 'not detected'}"
    )
    ui.info(f"stored {cal.path}")
    return 0

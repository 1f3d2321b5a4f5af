"""The Python API: `scan`, `inspect` and `lineage` return what the commands render.

Each function takes the command's options as keyword arguments spelled like its flags
(`--signature-rows 12` is `signature_rows=12`), with the same defaults, types and range
checks, because the values go through the command's own click parameters and then the
very function the command calls (`cmd_scan.scan_options`, `cmd_inspect.inspect_checks`,
`cmd_lineage.lineage_result`): no option is defined a third time. Options that only
choose how a result is printed (`--format`, `--out` of inspect, `--dry-run`, `--config`)
are not taken. Configuration files and DISTILL_AUDIT_* variables are the command
line's; the API reads neither. Errors are raised as `distill_audit.errors.AuditError`
subclasses (their `exit_code` is the CLI's).

It lives beside the commands because it parses through their parameters; the package
root re-exports it lazily (see distill_audit/__init__.py), so nothing heavy is imported
until a function is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distill_audit.checks.static import StaticChecks
    from distill_audit.lineage.check import LineageResult
    from distill_audit.scan.pipeline import ScanOutcome

# Per command: parameters that only shape the printed output (or read a config file).
_PRINT_ONLY = {
    "scan": {"config", "dry_run"},
    "inspect": {"config", "format", "out"},
    "lineage": {"config", "format"},
}


def parameters(command: str, values: dict[str, Any]) -> dict[str, Any]:
    """The command's parameter values as its command line would parse them (defaults, types, checks)."""
    from distill_audit.cli.main import click, get_click_command
    from distill_audit.errors import UsageError

    cmd = get_click_command().commands[command]
    names = {p.name for p in cmd.params if p.name} - _PRINT_ONLY[command]
    unknown = sorted(set(values) - names)
    if unknown:
        raise TypeError(
            f"{command}() got unexpected keyword argument(s) {', '.join(unknown)} (its options: {', '.join(sorted(names))})"
        )
    given = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items() if v is not None}
    try:  # default_map values are cast and checked like typed flags; no environment variable is read
        ctx = cmd.make_context(command, [], default_map=given)
    except click.exceptions.ClickException as exc:
        raise UsageError(f"{command}(): {exc.format_message()}") from None
    return dict(ctx.params)


class _Quiet:
    """ui.set_quiet for one call, restored afterwards (the API leaves no global state behind)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __enter__(self) -> None:
        from distill_audit import ui

        self.before = ui.is_quiet()
        ui.set_quiet(self.quiet)

    def __exit__(self, *exc: object) -> None:
        from distill_audit import ui

        ui.set_quiet(self.before)


def scan(data: str, student: str, **options: Any) -> ScanOutcome:
    """Run `distill-audit scan DATA --student STUDENT` and return its outcome.

    The outcome's `report` is the document written to report.json, `written` the report
    files (under `out`, default distill-audit-report, as on the command line) and
    `exit_code` what the command would exit with (1: the --fail-on gate failed).
    """
    from distill_audit.cli.cmd_scan import scan_options
    from distill_audit.scan.pipeline import run_scan

    params = parameters("scan", {**options, "data": str(data), "student": str(student)})
    params["dry_run"], params["config"] = False, None
    with _Quiet(params["quiet"]):
        return run_scan(scan_options(params))


def inspect(data: str, **options: Any) -> StaticChecks:
    """Run `distill-audit inspect DATA`'s model-free checks; `.to_dict()` is its --format json document."""
    from distill_audit.cli.cmd_inspect import inspect_checks

    params = parameters("inspect", {**options, "data": str(data)})
    with _Quiet(params["quiet"]):
        return inspect_checks(params)


def lineage(teacher: str, student: str, **options: Any) -> LineageResult:
    """Run `distill-audit lineage TEACHER STUDENT`; `.to_dict()` is its --format json document."""
    from distill_audit.cli.cmd_lineage import lineage_result

    params = parameters("lineage", {**options, "teacher": str(teacher), "student": str(student)})
    with _Quiet(params["quiet"]):
        return lineage_result(params)

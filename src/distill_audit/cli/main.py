"""The `distill-audit` entry point: the typer app, config loading and exit codes.

Commands live in their own modules under `distill_audit.cli` and register on `app`.
`main()` turns every `AuditError` into one line on stderr and its documented exit
code, and click's usage errors into exit 4, so user mistakes never show a traceback.
"""

from __future__ import annotations

import os
import sys

# Passive OpenMP waiting: busy-waiting threads stall torch badly when another process
# shares the cores (a SmolLM2 forward pass went from ~1 s to ~12 s); set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from typing import Annotated, Optional

import typer

try:  # typer >= 0.2x vendors its own click
    from typer import _click as click
except ImportError:  # pragma: no cover - older typer uses click itself
    import click  # type: ignore[no-redef]

from distill_audit import __version__, ui
from distill_audit.config import build_default_map, find_config_arg, load_yaml_config
from distill_audit.errors import AuditError, ExitCode

app = typer.Typer(
    name="distill-audit",
    help="Audit a teacher-generated dataset for hidden traits a student would absorb.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "DISTILL_AUDIT"},
)

# Shared option types, so every command spells them the same way.
ConfigOpt = Annotated[
    Optional[str],
    typer.Option("--config", help="YAML file of option values (command line wins).", show_default=False),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only print results and errors.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for every random number generator.")]
ThreadsOpt = Annotated[
    Optional[int], typer.Option("--threads", min=1, help="CPU threads for torch.", show_default=False)
]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"distill-audit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, show_envvar=False, help="Print the version and exit."),
    ] = False,
) -> None:
    """Audit a teacher-generated dataset for hidden traits a student would absorb."""


def _register_commands() -> None:
    # Import for side effects: each module adds its command(s) to `app`.
    import importlib
    import pkgutil

    import distill_audit.cli as pkg

    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if mod.name.startswith("cmd_"):
            importlib.import_module(f"distill_audit.cli.{mod.name}")


def get_click_command():
    _register_commands()
    return typer.main.get_command(app)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    code = run(argv)
    sys.exit(int(code))


def run(argv: list[str]) -> int:
    """Run the CLI on argv and return the exit code (used by main() and tests)."""
    ui.silence_libraries()  # before any command imports torch or transformers
    try:
        command = get_click_command()
        config_path = find_config_arg(argv)
        config = load_yaml_config(__import__("pathlib").Path(config_path)) if config_path else None
        params = {
            name: {p.name for p in cmd.params if p.name}
            for name, cmd in command.commands.items()  # type: ignore[attr-defined]
        }
        default_map = build_default_map(list(params), params, config)
        result = command.main(
            args=argv,
            prog_name="distill-audit",
            standalone_mode=False,
            default_map=default_map,
        )
        code = int(result) if isinstance(result, int) else 0
        if code == 130:  # typer's code for Ctrl-C; ours is RUN_ERROR
            ui.err.print("distill-audit: interrupted", highlight=False)
            return int(ExitCode.RUN_ERROR)
        return code
    except AuditError as exc:
        ui.err.print(f"[red]distill-audit: error:[/red] {exc}", highlight=False, markup=True)
        return int(exc.exit_code)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        ui.err.print("distill-audit: aborted", highlight=False)
        return int(ExitCode.RUN_ERROR)
    except click.exceptions.ClickException as exc:  # usage errors: bad flags, missing args
        if type(exc).__name__ == "NoArgsIsHelpError":  # help was printed; not an error
            return int(ExitCode.OK)
        ctx_help = ""
        if isinstance(exc, click.exceptions.UsageError) and exc.ctx is not None:
            ctx_help = f" (see '{exc.ctx.command_path} --help')"
        ui.err.print(f"distill-audit: error: {exc.format_message()}{ctx_help}", highlight=False, markup=False)
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        ui.err.print("distill-audit: interrupted", highlight=False)
        return int(ExitCode.RUN_ERROR)
    except MemoryError:
        ui.err.print("distill-audit: error: out of memory (try a smaller --sample or --batch-size)", highlight=False)
        return int(ExitCode.RUN_ERROR)

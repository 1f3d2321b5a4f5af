"""The `distill-audit` entry point: the typer app, config loading and exit codes.

Commands live in their own modules under `distill_audit.cli` and register on `app`.
`run()` is the one error boundary: every `AuditError`, click usage error and OSError on
a user-given path becomes one plain line on stderr and its documented exit code (4, or
3 for nothing to audit); anything unexpected exits 2 with one line naming a log file
that holds the traceback. SIGTERM is handled like Ctrl-C (exit 2, "interrupted").
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
from distill_audit.config import build_default_map, find_config, load_yaml_config
from distill_audit.errors import AuditError, ExitCode, UsageError

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


def check_out_file(path, flag: str = "--out") -> None:
    """A file output must not name a folder (else the error would name a temp file)."""
    from pathlib import Path

    if path is not None and Path(path).is_dir():
        raise UsageError(f"{flag} {path}: is a folder; give a file path")


def read_report_file(path: str):
    """load_report with the file's own problems (folder, binary, unreadable) named."""
    from pathlib import Path

    from distill_audit.errors import DataError
    from distill_audit.report.build import load_report

    p = Path(path)
    if p.is_dir():
        raise DataError(f"{path}: is a folder; give a report.json written by scan")
    if p.is_file():
        try:
            p.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}: not a JSON report (byte 0x{exc.object[exc.start]:02x} at offset {exc.start} is not UTF-8)"
            ) from None
    return load_report(p)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"distill-audit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            show_envvar=False,
            help="Print the version and exit.",
        ),
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


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so it unwinds like Ctrl-C (temp files removed)."""


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001
    raise Terminated()


def _command_name(argv: list[str], names) -> str | None:
    for arg in argv:
        if arg in names:
            return arg
        if not arg.startswith("-"):
            return None
    return None


def run(argv: list[str]) -> int:
    """Run the CLI on argv and return the exit code (used by main() and tests).

    The one error boundary of every command: user mistakes exit 4 (3: nothing to
    audit) with one plain line; anything unexpected exits 2 with one line and the
    path of a log file holding the traceback. Exit 1 is left to a risk verdict.
    """
    import signal
    import threading

    ui.silence_libraries()  # before any command imports torch or transformers
    old_handler = None
    if threading.current_thread() is threading.main_thread():
        try:
            old_handler = signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):  # pragma: no cover - not settable here
            old_handler = None
    try:
        return _run(argv)
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)


def _error(message: str) -> None:
    ui.error_line(message)


def _run(argv: list[str]) -> int:
    command_name = None
    try:
        command = get_click_command()
        commands = command.commands  # type: ignore[attr-defined]
        command_name = _command_name(argv, commands)
        config_path, config_variable = find_config(argv, command_name)
        config = load_yaml_config(config_path, config_variable) if config_path else None
        params = {name: {p.name for p in cmd.params if p.name} for name, cmd in commands.items()}
        multiple = {
            name: {p.name for p in cmd.params if p.name and getattr(p, "multiple", False)}
            for name, cmd in commands.items()
        }
        default_map = build_default_map(list(params), params, config, multiple=multiple)
        result = command.main(
            args=argv,
            prog_name="distill-audit",
            standalone_mode=False,
            default_map=default_map,
        )
        code = int(result) if isinstance(result, int) else 0
        if code == 130:  # typer's code for Ctrl-C; ours is RUN_ERROR
            _error("interrupted")
            return int(ExitCode.RUN_ERROR)
        return code
    except AuditError as exc:
        _error(str(exc))
        return int(exc.exit_code)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort as exc:
        # click turns Ctrl-C (and our SIGTERM) into Abort; both are "interrupted".
        cause = exc.__cause__ or exc.__context__
        _error("interrupted" if isinstance(cause, (KeyboardInterrupt, Terminated)) or cause is None else "aborted")
        return int(ExitCode.RUN_ERROR)
    except click.exceptions.ClickException as exc:  # usage errors: bad flags, missing args
        if type(exc).__name__ == "NoArgsIsHelpError":  # help was printed; not an error
            return int(ExitCode.OK)
        _error(_usage_message(exc, command_name))
        return int(ExitCode.USAGE)
    except (KeyboardInterrupt, Terminated):
        _error("interrupted")
        return int(ExitCode.RUN_ERROR)
    except MemoryError:
        _error("out of memory (try a smaller --sample or --batch-size)")
        return int(ExitCode.RUN_ERROR)
    except RecursionError:
        log = write_crash_log(argv)
        _error(f"input nested too deeply to process (full traceback in {log})")
        return int(ExitCode.RUN_ERROR)
    except OSError as exc:
        message = os_error_message(exc)
        if message is not None:
            _error(message)
            return int(ExitCode.USAGE)
        return _unexpected(argv, exc)
    except UnicodeDecodeError as exc:
        _error(f"a file given is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})")
        return int(ExitCode.USAGE)
    except Exception as exc:  # noqa: BLE001 - the boundary: a bug or a failed run, never exit 1
        return _unexpected(argv, exc)


def _unexpected(argv: list[str], exc: BaseException) -> int:
    log = write_crash_log(argv)
    first = str(exc).splitlines()[0] if str(exc) else ""
    _error(f"internal error: {type(exc).__name__}" + (f": {first}" if first else "") + f" (full traceback in {log})")
    return int(ExitCode.RUN_ERROR)


def os_error_message(exc: OSError) -> str | None:
    """One line for an OSError on a path the user gave (None: not about a path)."""
    path = exc.filename
    if path is None:
        return None
    reason = {
        FileExistsError: "already exists (and is not a folder this command may write into)",
        IsADirectoryError: "is a folder, expected a file",
        NotADirectoryError: "a part of the path is not a folder",
        PermissionError: "permission denied",
        FileNotFoundError: "no such file or folder",
    }.get(type(exc)) or (exc.strerror or type(exc).__name__).lower()
    if getattr(exc, "errno", None) == 40:  # ELOOP
        reason = "too many levels of symbolic links (a symlink loop)"
    target = f" -> {exc.filename2}" if exc.filename2 else ""
    return f"{os.fsdecode(path)}{target}: {reason}"


def write_crash_log(argv: list[str]) -> str:
    """Write the current traceback to a log file in the cache (or the temp folder); its path."""
    import tempfile
    import time
    import traceback

    text = f"distill-audit {__version__}\nargv: {argv!r}\n\n{traceback.format_exc()}"
    candidates = []
    try:
        from distill_audit.models.cache import cache_root

        candidates.append(cache_root() / "logs")
    except Exception:  # noqa: BLE001
        pass
    candidates.append(__import__("pathlib").Path(tempfile.gettempdir()))
    name = f"distill-audit-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(text, encoding="utf-8")
            return str(path)
        except OSError:
            continue
    return "(no writable log folder; rerun with PYTHONFAULTHANDLER=1)"


def _usage_message(exc, command_name: str | None) -> str:
    """click's message, naming the environment variable when the bad value came from one."""
    message = exc.format_message()
    param = getattr(exc, "param", None)
    ctx = getattr(exc, "ctx", None)
    if param is not None and getattr(param, "name", None) and ctx is not None:
        try:
            source = ctx.get_parameter_source(param.name)
        except Exception:  # noqa: BLE001
            source = None
        if source is not None and source.name in ("ENVIRONMENT", "DEFAULT_MAP"):
            for var in _env_names(command_name, param.name):
                if var in os.environ:
                    return f"{var}={os.environ[var]!r}: {message}"
    if isinstance(exc, click.exceptions.UsageError) and ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


def _env_names(command_name: str | None, param: str) -> list[str]:
    from distill_audit.config import ENV_PREFIX

    names = [f"{ENV_PREFIX}_{command_name.upper()}_{param.upper()}"] if command_name else []
    return names + [f"{ENV_PREFIX}_{param.upper()}"]

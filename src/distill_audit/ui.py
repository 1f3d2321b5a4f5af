"""One console for the whole tool: messages on stderr, results on stdout.

`--quiet` silences progress and info; when stderr is not a terminal (CI) rich prints
plain lines instead of live bars. The CLI also mutes the ML libraries' own bars, logs
and warnings (`silence_libraries`), so this console is the only voice.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from rich.console import Console

# markup=False: messages, paths and table cells carry user data ("a[/b].jsonl", a role "[/b]"),
# which must print as written; styles are applied with rich Text objects instead.
out = Console(soft_wrap=True, markup=False)  # results (tables, JSON) -> stdout
err = Console(stderr=True, soft_wrap=True, markup=False)  # progress, info, errors -> stderr

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


# Read by the libraries when they are imported, and inherited by worker processes.
_LIBRARY_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "DATASETS_VERBOSITY": "error",
    "HF_HUB_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}
_LIBRARY_LOGGERS = ("transformers", "datasets", "huggingface_hub", "accelerate", "peft")
# (module, function) that turn off the bars of a library that is already imported.
_BAR_SWITCHES = (
    ("transformers.utils.logging", "disable_progress_bar"),
    ("datasets.utils.tqdm", "disable_progress_bars"),
    ("huggingface_hub.utils.tqdm", "disable_progress_bars"),
)


def silence_libraries() -> None:
    """Keep third-party progress bars, log lines and warnings out of the CLI's output.

    The CLI reports progress (`progress_task`) and problems (`warn`, errors) itself;
    tqdm bars such as transformers' "Loading weights" and deprecation warnings meant
    for developers are noise on a terminal and worse in CI logs. Only the CLI calls
    this: a program importing distill_audit keeps its own settings. Environment
    defaults reach libraries not imported yet, so `--help` stays fast; a variable the
    user set wins, and PYTHONWARNINGS (or `python -W`) brings the warnings back.
    """
    if not sys.warnoptions:
        warnings.simplefilter("ignore")
    for key, value in _LIBRARY_ENV.items():
        os.environ.setdefault(key, value)
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for module, switch in _BAR_SWITCHES:
        if module in sys.modules:
            getattr(sys.modules[module], switch)()


def info(message: str) -> None:
    if not _quiet:
        err.print(message, highlight=False, markup=False)


def _plain(prefix: str, style: str, message: str):
    """A styled prefix and the message as literal text: brackets in paths or data are never markup."""
    from rich.text import Text

    return Text.assemble((prefix, style), str(message))


def warn(message: str) -> None:
    err.print(_plain("warning: ", "yellow", message), highlight=False, markup=False)


def error_line(message: str) -> None:
    """The one line a failed command prints (message printed verbatim, no markup)."""
    err.print(_plain("distill-audit: error: ", "red", message), highlight=False, markup=False)


def is_interactive() -> bool:
    return sys.stderr.isatty() and not _quiet


class _Task:
    def __init__(self, progress, task_id, label: str, total: int | None):
        self._progress, self._id, self._label, self._total = progress, task_id, label, total
        self._done = 0
        self._last_logged = -1

    def advance(self, n: int = 1) -> None:
        self._done += n
        if self._progress is not None:
            self._progress.advance(self._id, n)
        elif not _quiet and self._total:
            # Plain log for CI: a line at every 10% step.
            step = int(10 * self._done / self._total)
            if step != self._last_logged:
                self._last_logged = step
                err.print(f"{self._label}: {self._done}/{self._total}", highlight=False)


class progress_task:
    """`with progress_task("signature", total=n) as task: task.advance()`.

    A rich bar with ETA on a terminal; a line per 10% when not a terminal (CI);
    nothing with --quiet. Stages take no other progress mechanism.
    """

    def __init__(self, label: str, total: int | None = None):
        self.label, self.total = label, total
        self._progress = None

    def __enter__(self) -> _Task:
        if is_interactive():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=False,
            )
            self._progress.start()
            task_id = self._progress.add_task(self.label, total=self.total)
            return _Task(self._progress, task_id, self.label, self.total)
        return _Task(None, None, self.label, self.total)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

"""Exit codes and the errors that map onto them.

Every user mistake is raised as an `AuditError` subclass carrying one clear line
(file, line, field); the CLI prints that line and exits with the error's code, never
a traceback. Anything else is a bug or a run failure and exits with RUN_ERROR.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # ran; no risk at or above --fail-on
    RISK = 1  # risk at or above --fail-on (or grew past --baseline)
    RUN_ERROR = 2  # the run itself failed (out of memory, a bug, an interrupted stage)
    NOTHING_TO_AUDIT = 3  # empty data, or no row in a supported schema
    USAGE = 4  # bad flags, config, input file content or model reference


class AuditError(Exception):
    """An error whose message is meant for the user, printed as one line."""

    exit_code: ExitCode = ExitCode.RUN_ERROR

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(AuditError):
    """Bad flags, config or arguments."""

    exit_code = ExitCode.USAGE


class DataError(AuditError):
    """A dataset file or row the tool cannot read as given (names file, line, field)."""

    exit_code = ExitCode.USAGE


class ModelError(AuditError):
    """A model reference that cannot be resolved or loaded (names the model)."""

    exit_code = ExitCode.USAGE


class NothingToAuditError(AuditError):
    """The input holds no usable row."""

    exit_code = ExitCode.NOTHING_TO_AUDIT


class RunError(AuditError):
    """The run failed for a reason that is not the user's input."""

    exit_code = ExitCode.RUN_ERROR

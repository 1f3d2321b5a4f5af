"""Schemas: which fields of a row hold the prompt and the teacher's reply.

Four shapes are detected from the column names (and can be forced): prompt/completion,
OpenAI-style `messages` (the last assistant turn is the completion, everything before
it the prompt), Alpaca instruction/input/output, and plain `text`. Every other field
is provenance and lands in `Sample.meta` untouched.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from distill_audit.errors import NothingToAuditError, UsageError
from distill_audit.ingest.records import Message

SCHEMAS = ("prompt_completion", "messages", "alpaca", "text")

# Column names tried in order when a schema is detected rather than forced.
MESSAGES_KEYS = ("messages", "conversations", "conversation")
PROMPT_KEYS = ("prompt", "question", "query")
COMPLETION_KEYS = ("completion", "response", "answer")
TEXT_KEYS = ("text", "content")

ROLE_ALIASES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "model": "assistant",
    "tool": "tool",
    "function": "tool",
}


class RowProblem(Exception):
    """One row the schema cannot use; becomes a DataError or a SkippedRow."""

    def __init__(self, field: str | None, reason: str, detail: str = ""):
        super().__init__(reason)
        self.field, self.reason, self.detail = field, reason, detail


@dataclass(frozen=True)
class SchemaSpec:
    """A schema and the fields it reads (the rest of a row is provenance)."""

    name: str
    fields: dict[str, str] = field(default_factory=dict)  # role in schema -> column name

    @property
    def consumed(self) -> frozenset[str]:
        return frozenset(self.fields.values())

    def describe(self) -> str:
        return f"{self.name} ({', '.join(f'{k}={v}' for k, v in self.fields.items())})"


def _first(columns: Iterable[str], candidates: tuple[str, ...]) -> str | None:
    cols = list(columns)
    for name in candidates:
        if name in cols:
            return name
    return None


def detect_schema(
    columns: Iterable[str],
    *,
    source: str,
    schema: str | None = None,
    prompt_field: str | None = None,
    completion_field: str | None = None,
    messages_field: str | None = None,
) -> SchemaSpec:
    """Pick the schema from column names; explicit flags win over detection."""
    cols = list(columns)
    if schema is not None and schema not in SCHEMAS:
        raise UsageError(f"--schema {schema!r}: expected one of {', '.join(SCHEMAS)}")

    def need(name: str | None, flag: str) -> str:
        if name is None or name not in cols:
            shown = ", ".join(cols[:20]) or "none"
            what = f"field {name!r}" if name else "a field"
            raise UsageError(f"{source}: schema needs {what} ({flag}); the data has: {shown}")
        return name

    if schema is None:
        if messages_field:
            schema = "messages"
        elif prompt_field or completion_field:
            schema = "prompt_completion"
        elif _first(cols, MESSAGES_KEYS):
            schema = "messages"
        elif _first(cols, COMPLETION_KEYS):
            schema = "prompt_completion"
        elif "instruction" in cols and "output" in cols:
            schema = "alpaca"
        elif _first(cols, TEXT_KEYS):
            schema = "text"
        else:
            shown = ", ".join(cols[:20]) or "none"
            raise NothingToAuditError(
                f"{source}: no supported schema in fields [{shown}]",
                hint="expected messages, prompt/completion, instruction/output or text; "
                "name the fields with --schema/--prompt-field/--completion-field/--messages-field",
            )

    if schema == "messages":
        return SchemaSpec(
            "messages", {"messages": need(messages_field or _first(cols, MESSAGES_KEYS), "--messages-field")}
        )
    if schema == "prompt_completion":
        fields = {"completion": need(completion_field or _first(cols, COMPLETION_KEYS), "--completion-field")}
        prompt = prompt_field or _first(cols, PROMPT_KEYS)
        if prompt_field is not None:
            need(prompt_field, "--prompt-field")
        if prompt is not None:
            fields = {"prompt": prompt, **fields}
        return SchemaSpec("prompt_completion", fields)
    if schema == "alpaca":
        fields = {
            "instruction": need(prompt_field or "instruction", "--prompt-field"),
            "output": need(completion_field or "output", "--completion-field"),
        }
        if "input" in cols:
            fields["input"] = "input"
        return SchemaSpec("alpaca", fields)
    return SchemaSpec("text", {"text": need(completion_field or _first(cols, TEXT_KEYS), "--completion-field")})


def row_schema(row: dict[str, Any]) -> str | None:
    """The schema this one row's own keys (those with a value) point to, or None."""
    cols = [k for k, v in row.items() if v is not None]
    if _first(cols, MESSAGES_KEYS):
        return "messages"
    if _first(cols, COMPLETION_KEYS):
        return "prompt_completion"
    if "instruction" in cols and "output" in cols:
        return "alpaca"
    if _first(cols, TEXT_KEYS):
        return "text"
    return None


def json_type(value: Any) -> str:
    """JSON's name for a Python value's type (what users see in messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class RowNormalizer:
    """Turns one row (a dict) into (prompt, completion, meta) or raises RowProblem.

    It remembers the type each field had on the first row that used it, so a field
    that changes type ("string" then "object") is reported as such, with that line.
    """

    def __init__(self, spec: SchemaSpec):
        self.spec = spec
        self._first_type: dict[str, tuple[str, int | None]] = {}
        self._consumed = spec.consumed
        self._pc_columns = (
            (spec.fields.get("prompt"), spec.fields["completion"]) if spec.name == "prompt_completion" else None
        )

    def _fast_prompt_completion(self, row: dict[str, Any]):
        """The common case (two non-empty strings, as in earlier rows) without the checks' overhead."""
        prompt_col, completion_col = self._pc_columns  # type: ignore[misc]
        completion = row.get(completion_col)
        if type(completion) is not str or not completion or completion.isspace():
            return None
        if prompt_col is None:
            prompt: tuple[Message, ...] = ()
        else:
            text = row.get(prompt_col)
            if type(text) is not str:
                return None
            prompt = ({"role": "user", "content": text},)
        consumed = self._consumed
        return prompt, completion, {k: v for k, v in row.items() if k not in consumed and v is not None}

    def _get(self, row: dict[str, Any], role: str, line: int | None, *, required: bool = True) -> Any:
        column = self.spec.fields[role]
        if column not in row or row[column] is None:
            if required:
                raise RowProblem(column, "missing field", f"no value for {column!r}")
            return None
        return row[column]

    def _typed_str(self, value: Any, column: str, line: int | None) -> str:
        if isinstance(value, str):
            self._first_type.setdefault(column, ("string", line))
            return value
        self._type_error(value, column, "string", line)
        raise AssertionError  # unreachable

    def _type_error(self, value: Any, column: str, expected: str, line: int | None) -> None:
        got = json_type(value)
        first = self._first_type.get(column)
        if first is not None and first[0] != got:
            at = f" (line {first[1]})" if first[1] is not None else ""
            raise RowProblem(
                column, "field type changed", f"{column!r} is {got} here but {first[0]} in earlier rows{at}"
            )
        raise RowProblem(column, "wrong type", f"{column!r} is {got}, expected {expected}")

    def __call__(self, row: dict[str, Any], line: int | None = None) -> tuple[tuple[Message, ...], str, dict[str, Any]]:
        name = self.spec.name
        if self._pc_columns is not None and self._first_type:
            fast = self._fast_prompt_completion(row)
            if fast is not None:
                return fast
        if name == "messages":
            prompt, completion = self._split_messages(self._get(row, "messages", line), line)
            column = self.spec.fields["messages"]
        elif name == "prompt_completion":
            column = self.spec.fields["completion"]
            completion = self._completion_value(self._get(row, "completion", line), column, line)
            prompt = ()
            if "prompt" in self.spec.fields:
                prompt = self._prompt_value(self._get(row, "prompt", line), self.spec.fields["prompt"], line)
        elif name == "alpaca":
            column = self.spec.fields["output"]
            instruction = self._typed_str(self._get(row, "instruction", line), self.spec.fields["instruction"], line)
            extra = ""
            if "input" in self.spec.fields:
                value = self._get(row, "input", line, required=False)
                extra = self._typed_str(value, "input", line) if value is not None else ""
            user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
            prompt = ({"role": "user", "content": user},)
            completion = self._typed_str(self._get(row, "output", line), column, line)
        else:
            column = self.spec.fields["text"]
            prompt, completion = (), self._typed_str(self._get(row, "text", line), column, line)
        if not completion.strip():
            raise RowProblem(column, "empty completion", "the teacher's reply is empty or whitespace")
        consumed = self._consumed
        meta = {k: v for k, v in row.items() if k not in consumed and v is not None}
        return prompt, completion, meta

    def _prompt_value(self, value: Any, column: str, line: int | None) -> tuple[Message, ...]:
        if isinstance(value, list):  # conversational prompt (a list of messages)
            self._first_type.setdefault(column, ("array", line))
            return tuple(self._message(m, f"{column}[{i}]") for i, m in enumerate(value))
        text = self._typed_str(value, column, line)
        return ({"role": "user", "content": text},)

    def _completion_value(self, value: Any, column: str, line: int | None) -> str:
        if isinstance(value, list):  # conversational completion: [{"role": "assistant", ...}]
            self._first_type.setdefault(column, ("array", line))
            msgs = [self._message(m, f"{column}[{i}]") for i, m in enumerate(value)]
            replies = [m["content"] for m in msgs if m["role"] == "assistant"]
            if not replies:
                raise RowProblem(column, "no assistant turn", f"{column!r} holds no assistant message")
            return replies[-1]
        return self._typed_str(value, column, line)

    def _message(self, msg: Any, where: str) -> Message:
        if not isinstance(msg, dict):
            raise RowProblem(where, "wrong type", f"a message is {json_type(msg)}, expected object")
        role_raw = msg.get("role", msg.get("from"))
        role = ROLE_ALIASES.get(role_raw.lower()) if isinstance(role_raw, str) else None
        if role is None:
            shown = (
                repr(role_raw)
                if isinstance(role_raw, (str, int, float, bool)) or role_raw is None
                else json_type(role_raw)
            )
            raise RowProblem(where, "unknown role", f"role {shown}; expected system, user or assistant")
        content = msg.get("content", msg.get("value"))
        if isinstance(content, list):  # multi-part content: keep the text parts
            texts = []
            for j, part in enumerate(content):
                if not isinstance(part, dict):
                    continue
                text = part.get("text")
                if text is not None and not isinstance(text, str):
                    raise RowProblem(
                        f"{where}.content[{j}].text", "wrong type", f"a text part is {json_type(text)}, expected string"
                    )
                texts.append(text or "")
            content = "".join(texts)
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise RowProblem(where, "wrong type", f"content is {json_type(content)}, expected string")
        return {"role": role, "content": content}

    def _split_messages(self, value: Any, line: int | None) -> tuple[tuple[Message, ...], str]:
        column = self.spec.fields["messages"]
        if isinstance(value, str):  # CSV exports store the list as JSON text
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise RowProblem(
                    column, "malformed JSON", f"{column!r} is text but not a JSON list ({exc.msg})"
                ) from None
            except RecursionError:
                raise RowProblem(column, "nested too deep", f"{column!r} holds JSON nested too deeply") from None
        if not isinstance(value, list):
            self._type_error(value, column, "array of messages", line)
        self._first_type.setdefault(column, ("array", line))
        msgs = [self._message(m, f"{column}[{i}]") for i, m in enumerate(value)]
        last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
        if last is None:
            raise RowProblem(column, "no assistant turn", "the conversation has no assistant message")
        return tuple(msgs[:last]), msgs[last]["content"]

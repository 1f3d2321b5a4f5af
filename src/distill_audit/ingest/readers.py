"""Readers: one per file format, each a stream of raw rows with their location.

A reader yields `RawRow(index, line, value)` where `value` is the row as a dict, or a
`RowProblem` when the row itself cannot be read (malformed JSON, bad bytes, too big).
Parsing is pyarrow's; readers only add what pyarrow does not give: exact line numbers
for every row and problem, and bounded memory (nothing holds the whole file).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from distill_audit.errors import DataError, NothingToAuditError
from distill_audit.ingest.schemas import RowProblem

BLOCK_BYTES = 4 << 20  # JSONL is parsed in blocks of whole lines of about this size
ARROW_BATCH_ROWS = 8192
# Deepest JSON nesting a row may have. Checked on the bytes before any parser sees them:
# pyarrow crashes the process on a line of ~100,000 nested arrays, json raises RecursionError.
MAX_JSON_DEPTH = 100

FILE_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
    ".arrow": "arrow",
    ".feather": "arrow",
}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class RawRow(NamedTuple):  # a tuple: built once per row on the hot path
    index: int  # 0-based position among the source's rows
    line: int | None  # 1-based line in a text file, else None
    value: dict[str, Any] | RowProblem


def detect_format(source: str) -> str:
    """The format of `source`: a file suffix, a `datasets` folder, or a hub id."""
    path = Path(source)
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return "hf-disk"
        raise DataError(f"{source}: a folder, but not one written by datasets' save_to_disk")
    if path.is_file():
        fmt = FILE_FORMATS.get(path.suffix.lower())
        if fmt is None:
            known = ", ".join(sorted(FILE_FORMATS))
            raise DataError(f"{source}: unknown file type {path.suffix or '(no suffix)'!r}", hint=f"supported: {known}")
        return fmt
    if path.suffix.lower() in FILE_FORMATS or os.sep in source and not HUB_ID.match(source) or source.startswith("."):
        raise DataError(f"{source}: file not found")
    if HUB_ID.match(source):
        return "hf-hub"
    raise DataError(f"{source}: file not found")


def read_rows(
    source: str, fmt: str, *, max_row_bytes: int, hub: Any = None, read: dict | None = None
) -> Iterator[RawRow]:
    """The rows of `source`; `hub` (ingest.hub.HubSelection) picks a Hub id's subset, split, revision,
    and `read`, when given, receives what was read of it ({subset, split, revision})."""
    readers = {
        "jsonl": read_jsonl,
        "json": read_json_array,
        "parquet": read_parquet,
        "csv": read_csv,
        "tsv": read_csv,
        "arrow": read_arrow,
        "hf-disk": read_hf_disk,
        "hf-hub": read_hf_hub,
    }
    if fmt in ("jsonl", "json", "csv", "tsv"):
        if os.path.getsize(source) == 0:
            raise NothingToAuditError(f"{source}: file is empty")
        return readers[fmt](source, max_row_bytes=max_row_bytes, sep="\t" if fmt == "tsv" else ",")
    if fmt in ("hf-disk", "hf-hub"):
        return readers[fmt](source, hub=hub, read=read)
    return readers[fmt](source, max_row_bytes=max_row_bytes)


# ---------------------------------------------------------------- JSON Lines


def _line_blocks(f: io.BufferedReader, max_row_bytes: int) -> Iterator[tuple[int, bytes | int]]:
    """Yield (first line number, block of whole lines) or (line number, size) for an over-long line.

    An over-long line is skipped to its end without being held in memory.
    """
    buf = b""
    line = 1
    while True:
        chunk = f.read(BLOCK_BYTES)
        if not chunk:
            if buf:
                yield line, buf
            return
        buf += chunk
        cut = buf.rfind(b"\n")
        if cut == -1:
            if len(buf) > max_row_bytes:
                size = len(buf)
                while True:
                    chunk = f.read(BLOCK_BYTES)
                    newline = chunk.find(b"\n") if chunk else -1
                    if not chunk or newline != -1:
                        size += newline if newline != -1 else 0
                        buf = chunk[newline + 1 :] if newline != -1 else b""
                        break
                    size += len(chunk)
                yield line, size
                line += 1
            continue
        block, buf = buf[: cut + 1], buf[cut + 1 :]
        yield line, block
        line += block.count(b"\n")


def _utf8_problem(raw: bytes) -> RowProblem:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RowProblem(
            None, "not UTF-8", f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1} is not valid UTF-8"
        )
    raise AssertionError("bytes are valid UTF-8")


_DEPTH_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def too_deep(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests arrays/objects deeper than `limit` (brackets in strings ignored)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for m in _DEPTH_TOKENS.finditer(raw):
        c = m.group()
        if c == b"[" or c == b"{":
            depth += 1
            if depth > limit:
                return True
        elif c == b"]" or c == b"}":
            depth -= 1
    return False


def deep_lines(block: bytes, limit: int = MAX_JSON_DEPTH) -> set[int]:
    """0-based offsets of the lines of `block` nested deeper than `limit` (numpy pre-filter, exact check)."""
    import numpy as np

    if block.count(b"[") + block.count(b"{") <= limit:
        return set()
    a = np.frombuffer(block, dtype=np.uint8)
    opens = ((a == 0x5B) | (a == 0x7B)).astype(np.int64)
    starts = np.concatenate(([0], np.flatnonzero(a == 0x0A) + 1))
    starts = starts[starts < len(a)]
    counts = np.add.reduceat(opens, starts)
    out: set[int] = set()
    for i in np.flatnonzero(counts > limit):
        begin = int(starts[i])
        end = int(starts[i + 1]) if i + 1 < len(starts) else len(block)
        if too_deep(block[begin:end], limit):
            out.add(int(i))
    return out


def _deep_problem() -> RowProblem:
    return RowProblem(None, "nested too deep", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def _parse_line(raw: bytes) -> dict[str, Any] | RowProblem:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _utf8_problem(raw)
    if too_deep(raw):
        return _deep_problem()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return RowProblem(None, "malformed JSON", f"{exc.msg} at column {exc.colno}")
    except RecursionError:
        return _deep_problem()
    if not isinstance(value, dict):
        from distill_audit.ingest.schemas import json_type

        return RowProblem(None, "not a JSON object", f"the line holds a JSON {json_type(value)}")
    return value


def _arrow_block(block: bytes) -> list[dict[str, Any]] | None:
    """Parse a block of JSON lines with pyarrow; None when the slow path must locate a problem.

    pyarrow skips blank lines and reports errors by block, so any block it cannot
    map one row per line (or that holds a type we would not get from json.loads)
    goes through the exact per-line path instead.
    """
    import pyarrow as pa
    import pyarrow.json as pajson

    try:
        table = pajson.read_json(io.BytesIO(block), read_options=pajson.ReadOptions(block_size=len(block) + 1))
    except (pa.ArrowInvalid, UnicodeDecodeError, ValueError):
        return None
    n_lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
    if table.num_rows != n_lines or not all(_plain_json_type(f.type) for f in table.schema):
        return None
    # pyarrow gives every row every key of the block (null where a row has none), so a
    # block with any null cannot tell a missing key from a null: read it line by line.
    if any(_has_nulls(chunk) for column in table.columns for chunk in column.chunks):
        return None
    try:
        return table.to_pylist()
    except UnicodeDecodeError:  # pyarrow does not validate UTF-8 until conversion
        return None


def _has_nulls(arr: Any) -> bool:
    import pyarrow.types as pt

    if arr.null_count:
        return True
    t = arr.type
    if pt.is_struct(t):
        return any(_has_nulls(arr.field(i)) for i in range(t.num_fields))
    if pt.is_list(t) or pt.is_large_list(t):
        return _has_nulls(arr.flatten())
    return False


def _plain_json_type(t: Any) -> bool:
    import pyarrow.types as pt

    if pt.is_struct(t):
        return all(_plain_json_type(t.field(i).type) for i in range(t.num_fields))
    if pt.is_list(t) or pt.is_large_list(t):
        return _plain_json_type(t.value_type)
    return (
        pt.is_string(t)
        or pt.is_large_string(t)
        or pt.is_integer(t)
        or pt.is_floating(t)
        or pt.is_boolean(t)
        or pt.is_null(t)
    )


def read_jsonl(source: str, *, max_row_bytes: int, **_: Any) -> Iterator[RawRow]:
    index = 0
    with open(source, "rb") as f:
        for first_line, block in _line_blocks(f, max_row_bytes):
            if isinstance(block, int):
                mb = block / 2**20
                detail = f"the row is {mb:.1f} MB, over the {max_row_bytes / 2**20:.0f} MB limit (--max-row-mb)"
                yield RawRow(index, first_line, RowProblem(None, "row too large", detail))
                index += 1
                continue
            if first_line == 1 and block.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
                block = block[3:]
            deep = deep_lines(block)  # never handed to pyarrow (it crashes on them)
            rows = None if deep else _arrow_block(block)
            if rows is not None:
                for i, row in enumerate(rows):
                    yield RawRow(index + i, first_line + i, row)
                index += len(rows)
                continue
            for i, raw in enumerate(block.split(b"\n")):
                if not raw.strip():
                    continue
                if len(raw) > max_row_bytes:
                    detail = f"the row is {len(raw) / 2**20:.1f} MB, over the {max_row_bytes / 2**20:.0f} MB limit (--max-row-mb)"
                    yield RawRow(index, first_line + i, RowProblem(None, "row too large", detail))
                elif i in deep:
                    yield RawRow(index, first_line + i, _deep_problem())
                else:
                    yield RawRow(index, first_line + i, _parse_line(raw))
                index += 1


# ---------------------------------------------------------------- JSON array


def read_json_array(source: str, *, max_row_bytes: int, **_: Any) -> Iterator[RawRow]:
    """A JSON array of objects (held in memory: JSON arrays cannot be streamed by line).

    Elements are decoded one at a time so a malformed element is located by line.
    A .json file that is really JSON Lines is read as such.
    """
    raw = Path(source).read_bytes()
    if too_deep(raw):
        raise DataError(f"{source}: JSON nested deeper than {MAX_JSON_DEPTH} levels (not rows of a dataset)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{source}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x})") from None
    start = len(text) - len(text.lstrip())
    if not text.strip():
        raise NothingToAuditError(f"{source}: file is empty")
    if text[start] == "{":  # JSON Lines saved as .json, or one object holding the rows
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg == "Extra data":
                del raw, text
                yield from read_jsonl(source, max_row_bytes=max_row_bytes)
                return
            raise DataError(f"{source}:{exc.lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None
        lists = [k for k, v in obj.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(lists) != 1:
            yield RawRow(0, 1, obj)  # a single row
            return
        for i, row in enumerate(obj[lists[0]]):
            yield RawRow(i, None, row if isinstance(row, dict) else RowProblem(None, "not a JSON object"))
        return
    if text[start] != "[":
        raise DataError(f"{source}:1: expected a JSON array of rows (or JSON Lines)")
    decoder = json.JSONDecoder()
    pos, line, counted_to, index = start + 1, 1, 0, 0
    ws = re.compile(r"[\s,]*")
    while True:
        pos = ws.match(text, pos).end()
        if pos >= len(text):
            raise DataError(f"{source}:{text.count(chr(10)) + 1}: malformed JSON (the array is not closed)")
        if text[pos] == "]":
            return
        line += text.count("\n", counted_to, pos)
        counted_to = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}:{exc.lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None
        if end - pos > max_row_bytes:
            value = RowProblem(None, "row too large", f"the row is {(end - pos) / 2**20:.1f} MB (--max-row-mb)")
        elif not isinstance(value, dict):
            from distill_audit.ingest.schemas import json_type

            value = RowProblem(None, "not a JSON object", f"an element is a JSON {json_type(value)}")
        yield RawRow(index, line, value)
        index += 1
        pos = end


# ---------------------------------------------------------------- CSV / TSV


def _first_bad_utf8_line(source: str) -> tuple[int, str] | None:
    with open(source, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return number, f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"
    return None


def read_csv(source: str, *, max_row_bytes: int, sep: str = ",", **_: Any) -> Iterator[RawRow]:
    """CSV/TSV with a header row; every column read as text (numbers stay as written)."""
    import csv

    import pyarrow as pa
    import pyarrow.csv as pacsv

    with open(source, newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader(f, delimiter=sep), None)
    if not header:
        raise NothingToAuditError(f"{source}: file is empty")
    problems: list[tuple[int | None, str]] = []

    def on_invalid(row: Any) -> str:
        problems.append((row.number, f"expected {row.expected_columns} columns, got {row.actual_columns}"))
        return "skip"

    try:
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=max(BLOCK_BYTES, max_row_bytes)),
            parse_options=pacsv.ParseOptions(delimiter=sep, newlines_in_values=True, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        line, index = 2, 0
        for batch in reader:
            for row in batch.to_pylist():
                while problems and problems[0][0] is not None and problems[0][0] <= line:
                    bad_line, detail = problems.pop(0)
                    yield RawRow(index, bad_line, RowProblem(None, "malformed CSV row", detail))
                    index += 1
                yield RawRow(index, line, row)
                index += 1
                line += 1 + sum(v.count("\n") for v in row.values() if isinstance(v, str))
        for bad_line, detail in problems:
            yield RawRow(index, bad_line, RowProblem(None, "malformed CSV row", detail))
            index += 1
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        if "UTF8" in str(exc) or isinstance(exc, UnicodeDecodeError):
            bad = _first_bad_utf8_line(source)
            if bad is not None:
                raise DataError(f"{source}:{bad[0]}: not UTF-8 ({bad[1]})") from None
        raise DataError(f"{source}: not a readable CSV file ({str(exc).splitlines()[0]})") from None


# ---------------------------------------------------------------- Arrow-based


def _batches_to_rows(batches: Any, start: int = 0) -> Iterator[RawRow]:
    index = start
    for batch in batches:
        for row in batch.to_pylist():
            yield RawRow(index, None, row)
            index += 1


def read_parquet(source: str, **_: Any) -> Iterator[RawRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(source, memory_map=True)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{source}: not a readable Parquet file ({exc})") from None
    rows = 0
    try:
        for row in _batches_to_rows(pf.iter_batches(batch_size=ARROW_BATCH_ROWS)):
            rows += 1
            yield row
    except (pa.ArrowException, OSError) as exc:  # corrupted after a readable footer
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{source}: not a readable Parquet file after row {rows} ({first})") from None


def read_arrow(source: str, **_: Any) -> Iterator[RawRow]:
    """Arrow IPC, file or stream format (datasets writes the stream format)."""
    import pyarrow as pa

    try:
        mm_ctx = pa.memory_map(source, "r")
    except OSError as exc:
        raise DataError(f"{source}: not a readable Arrow file ({exc})") from None
    with mm_ctx as mm:
        try:
            reader: Any = pa.ipc.open_file(mm)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:
            mm.seek(0)
            try:
                reader = pa.ipc.open_stream(mm)
            except pa.ArrowInvalid as exc:
                raise DataError(f"{source}: not a readable Arrow file ({exc})") from None
            batches = iter(reader)
        try:
            yield from _batches_to_rows(batches)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(
                f"{source}: not a readable Arrow file ({str(exc).splitlines()[0] if str(exc) else exc})"
            ) from None


def read_hf_disk(source: str, *, hub: Any = None, read: dict | None = None, **_: Any) -> Iterator[RawRow]:
    from datasets import load_from_disk

    from distill_audit.ingest.hub import pick_split

    try:
        data = load_from_disk(source)
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(f"{source}: not a readable datasets folder ({exc})") from None
    data, split = pick_split(data, source, getattr(hub, "split", None))
    if read is not None:
        read.update({"split": split})
    yield from _batches_to_rows(data.with_format("arrow").iter(batch_size=ARROW_BATCH_ROWS))


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Force offline mode so a dataset id never waits on a network that is not there."""
    saved_env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    os.environ.update({k: "1" for k in saved_env})
    import datasets.config as dconfig
    import huggingface_hub.constants as hconst

    saved = (dconfig.HF_HUB_OFFLINE, hconst.HF_HUB_OFFLINE)
    dconfig.HF_HUB_OFFLINE = hconst.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        dconfig.HF_HUB_OFFLINE, hconst.HF_HUB_OFFLINE = saved
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def read_hf_hub(source: str, *, hub: Any = None, read: dict | None = None, **_: Any) -> Iterator[RawRow]:
    from distill_audit.ingest.hub import HubSelection, load_hub

    data, what = load_hub(source, hub or HubSelection())
    if read is not None:
        read.update(what)
    yield from _batches_to_rows(data.with_format("arrow").iter(batch_size=ARROW_BATCH_ROWS))

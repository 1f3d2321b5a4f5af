"""Write the kept rows in the input's own format, from the original bytes where the format allows.

JSONL, CSV/TSV and JSON arrays are copied byte for byte, less the removed rows' own
bytes (a record's span is located the way the reader located it: its line, its CSV
record, its array element), so fields, order, spacing and rows the audit never read
stay exactly as they were. Parquet is rewritten from the same Arrow table (schema and
metadata kept, the removed rows taken out). Every file goes through distill_audit.atomic.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Collection
from pathlib import Path

from distill_audit.atomic import atomic_path, write_bytes
from distill_audit.errors import DataError, UsageError

WRITERS: dict[str, Callable[[str, Path, Collection[int], Collection[int]], None]] = {}


def writer(*formats: str):
    """Register a writer for input formats (the reader's format names)."""

    def deco(fn):
        for f in formats:
            WRITERS[f] = fn
        return fn

    return deco


def write_kept(source: str, fmt: str, out: Path, *, drop_index: Collection[int], drop_lines: Collection[int]) -> None:
    """Write `source` less the removed rows (Sample.index / Sample.line) to `out`, atomically."""
    fn = WRITERS.get(fmt)
    if fn is None:
        raise UsageError(f"sanitize writes {', '.join(sorted(WRITERS))} files; {source} is {fmt}")
    fn(source, out, set(drop_index), set(drop_lines))


@writer("jsonl")
def _jsonl(source: str, out: Path, _drop_index: Collection[int], drop_lines: Collection[int]) -> None:
    lines = Path(source).read_bytes().splitlines(keepends=True)
    kept = []
    for n, raw in enumerate(lines, 1):
        if n not in drop_lines:
            kept.append(raw)
        elif n == 1 and raw.startswith(b"\xef\xbb\xbf"):
            kept.append(b"\xef\xbb\xbf")  # the file's byte-order mark is not the row's
    write_bytes(out, b"".join(kept))


@writer("csv", "tsv")
def _csv(source: str, out: Path, _drop_index: Collection[int], drop_lines: Collection[int]) -> None:
    with open(source, newline="", encoding="utf-8") as f:
        lines = list(f)
    # Record spans as the csv module reads them (a quoted field may hold newlines).
    reader = csv.reader(iter(lines), delimiter="\t" if source.endswith(".tsv") else ",")
    spans, start = [], 1
    for _ in reader:
        spans.append((start, reader.line_num))
        start = reader.line_num + 1
    keep = [True] * len(lines)
    for first, last in spans[1:]:  # the header is never a row
        if first in drop_lines:
            for k in range(first - 1, last):
                keep[k] = False
    with atomic_path(out) as tmp:
        tmp.write_text("".join(x for x, k in zip(lines, keep) if k), encoding="utf-8", newline="")


@writer("json")
def _json(source: str, out: Path, drop_index: Collection[int], drop_lines: Collection[int]) -> None:
    text = Path(source).read_bytes().decode("utf-8")
    start = len(text) - len(text.lstrip())
    if text[start] == "{":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:  # JSON Lines saved as .json
            _jsonl(source, out, drop_index, drop_lines)
            return
        lists = [k for k, v in obj.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(lists) != 1:
            raise DataError(f"{source}: one JSON object is one row; nothing to remove from it")
        obj[lists[0]] = [r for i, r in enumerate(obj[lists[0]]) if i not in drop_index]
        write_bytes(out, (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode())  # re-serialized
        return
    decoder, ws = json.JSONDecoder(), re.compile(r"[\s,]*")
    spans: list[tuple[int, int]] = []
    pos = start + 1
    while True:
        pos = ws.match(text, pos).end()
        if pos >= len(text) or text[pos] == "]":
            break
        _, end = decoder.raw_decode(text, pos)
        spans.append((pos, end))
        pos = end
    if not spans:
        write_bytes(out, text.encode())
        return
    sep = text[spans[0][1] : spans[1][0]] if len(spans) > 1 else ",\n"  # the file's own separator
    parts, prev = [text[: spans[0][0]]], None
    for i, (a, b) in enumerate(spans):
        if i in drop_index:
            continue
        if prev is not None:
            parts.append(text[spans[prev][1] : a] if prev == i - 1 else sep)
        parts.append(text[a:b])
        prev = i
    parts.append(text[spans[-1][1] :])  # whitespace, the closing bracket and what follows it
    write_bytes(out, "".join(parts).encode())


@writer("parquet")
def _parquet(source: str, out: Path, drop_index: Collection[int], _drop_lines: Collection[int]) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(source)
    keep = [i for i in range(table.num_rows) if i not in drop_index]
    with atomic_path(out) as tmp:
        pq.write_table(table.take(keep), tmp)

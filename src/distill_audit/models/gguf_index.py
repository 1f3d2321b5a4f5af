"""Read a GGUF file's metadata and tensor index quickly, and single tensors on demand.

`gguf.GGUFReader` builds a numpy view for every vocabulary string, which takes tens
of seconds on a 262k-token vocabulary; lineage and resolution only need the scalar
metadata and where each tensor lies. This walks the header once (skipping long
arrays), checks every tensor lies inside the file (a truncated download fails here
with a clear message), and dequantizes single tensors with `gguf.quants`.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from distill_audit.errors import ModelError

GGUF_MAGIC = b"GGUF"
_SCALARS = {  # GGUFValueType -> struct format
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9
_KEEP_ARRAY = 64  # arrays longer than this (vocabularies) are skipped, only counted


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # numpy order (rows, cols), as transformers sees it
    qtype: int
    offset: int  # absolute byte offset in the file
    n_bytes: int


@dataclass
class GGUFIndex:
    path: Path
    metadata: dict[str, object] = field(default_factory=dict)
    array_lengths: dict[str, int] = field(default_factory=dict)
    array_spans: dict[str, tuple[int, int]] = field(default_factory=dict)  # byte ranges of skipped arrays
    tensors: dict[str, TensorInfo] = field(default_factory=dict)

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return str(value) if value is not None else None

    def arch_value(self, key: str):
        return self.metadata.get(f"{self.architecture}.{key}")

    def array_digest(self, key: str) -> str | None:
        """sha256 of a long array's raw bytes (e.g. the vocabulary), or None."""
        import hashlib

        span = self.array_spans.get(key)
        if span is None:
            return None
        with self.path.open("rb") as f:
            f.seek(span[0])
            return hashlib.sha256(f.read(span[1] - span[0])).hexdigest()


class _Cursor:
    def __init__(self, buf, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.buf):
            raise ModelError(f"{self.path}: GGUF header is truncated (file ends at byte {len(self.buf)})")
        value = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return value[0] if len(value) == 1 else value

    def string(self) -> str:
        n = self.take("Q")
        if self.pos + n > len(self.buf):
            raise ModelError(f"{self.path}: GGUF header is truncated (file ends at byte {len(self.buf)})")
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        n = self.take("Q")
        self.pos += n

    def value(self, vtype: int, key: str, index: GGUFIndex):
        if vtype in _SCALARS:
            return self.take(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype, count = self.take("I"), self.take("Q")
            if count > _KEEP_ARRAY:
                index.array_lengths[key] = count
                start = self.pos
                if itype == _STRING:
                    for _ in range(count):
                        self.skip_string()
                elif itype in _SCALARS:
                    self.pos += count * struct.calcsize("<" + _SCALARS[itype])
                else:
                    raise ModelError(f"{self.path}: unsupported nested array in GGUF key {key}")
                if self.pos > len(self.buf):
                    raise ModelError(f"{self.path}: GGUF header is truncated (file ends at byte {len(self.buf)})")
                index.array_spans[key] = (start, self.pos)
                return None
            return [self.value(itype, key, index) for _ in range(count)]
        raise ModelError(f"{self.path}: unknown GGUF value type {vtype} for key {key}")


def read_gguf_index(path: str | Path) -> GGUFIndex:
    """Metadata (scalars and short arrays) and the tensor index; ModelError if damaged."""
    path = Path(path)
    st = path.stat()
    return _read_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=16)
def _read_cached(path_str: str, size: int, mtime_ns: int) -> GGUFIndex:
    from gguf.constants import GGMLQuantizationType
    from gguf.quants import quant_shape_to_byte_shape

    path = Path(path_str)
    if size < 24:
        raise ModelError(f"{path}: not a GGUF file (only {size} bytes)")
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != GGUF_MAGIC:
            raise ModelError(f"{path}: not a GGUF file (bad magic bytes)")
        cur = _Cursor(buf, path)
        cur.pos = 4
        version = cur.take("I")
        if version not in (2, 3):
            raise ModelError(f"{path}: unsupported GGUF version {version}")
        n_tensors, n_kv = cur.take("Q"), cur.take("Q")
        index = GGUFIndex(path=path)
        for _ in range(n_kv):
            key = cur.string()
            index.metadata[key] = cur.value(cur.take("I"), key, index)
        raw_tensors = []
        for _ in range(n_tensors):
            name = cur.string()
            n_dims = cur.take("I")
            dims = [cur.take("Q") for _ in range(n_dims)]
            raw_tensors.append((name, tuple(reversed(dims)), cur.take("I"), cur.take("Q")))
        alignment = int(index.metadata.get("general.alignment", 32))
        data_start = cur.pos + (-cur.pos % alignment)
    for name, shape, qtype, rel in raw_tensors:
        try:
            byte_shape = quant_shape_to_byte_shape(shape, GGMLQuantizationType(qtype))
        except (ValueError, AssertionError) as exc:
            raise ModelError(f"{path}: tensor {name} has an unreadable type/shape ({exc})") from None
        n_bytes = int(np.prod(byte_shape))
        offset = data_start + rel
        if offset + n_bytes > size:
            raise ModelError(
                f"{path}: GGUF is truncated (tensor {name} ends at byte {offset + n_bytes}, file has {size});"
                " download it again"
            )
        index.tensors[name] = TensorInfo(name, shape, qtype, offset, n_bytes)
    return index


def read_gguf_tensor(index: GGUFIndex, name: str) -> np.ndarray:
    """One tensor, dequantized to float32, in numpy (rows, cols) order."""
    from gguf.constants import GGMLQuantizationType
    from gguf.quants import dequantize, quant_shape_to_byte_shape

    info = index.tensors[name]
    qtype = GGMLQuantizationType(info.qtype)
    raw = np.memmap(index.path, dtype=np.uint8, mode="r", offset=info.offset, shape=(info.n_bytes,))
    data = raw.reshape(quant_shape_to_byte_shape(info.shape, qtype))
    return np.asarray(dequantize(data, qtype), dtype=np.float32).reshape(info.shape)

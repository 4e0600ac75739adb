"""Values between repspace and PostgreSQL, without per-value Python where it can be helped.

PostgreSQL ``text``/``jsonb`` cannot hold NUL characters; ids, texts and payload strings are stored with a reversible
escape (``\\`` -> ``\\\\``, NUL -> ``\\0``), applied to filter values too, so every value round-trips unchanged and
filters still compare exactly. Vectors travel in pgvector's binary format, gathered into one numpy buffer per column.
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from repspace.collections.store import vector_type

_ESC = re.compile(r"\\\\|\\0")


def esc(s: str | None) -> str | None:
    if s is None:
        return None
    return s.replace("\\", "\\\\").replace("\x00", "\\0") if ("\\" in s or "\x00" in s) else s


def unesc(s: str | None) -> str | None:
    if s is None or "\\" not in s:
        return s
    return _ESC.sub(lambda m: "\\" if m.group(0) == "\\\\" else "\x00", s)


def _map_strings(x: Any, f) -> Any:
    """`f` applied to every string (keys too) of a JSON value."""
    if isinstance(x, str):
        return f(x)
    if isinstance(x, dict):
        return {f(k): _map_strings(v, f) for k, v in x.items()}
    if isinstance(x, list):
        return [_map_strings(v, f) for v in x]
    return x


def esc_json(x: Any) -> Any:
    return _map_strings(x, esc)


def unesc_json(x: Any) -> Any:
    return _map_strings(x, unesc)


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8  # signature, flags, no header extension
_NULL = b"\xff\xff\xff\xff"


class Field:
    """One column of a binary COPY, columnar: every row's value in its type's wire format, the non-NULL ones back to
    back in row order (`data`, uint8), and each row's length (`lengths`, int64; -1 = NULL)."""

    def __init__(self, lengths: np.ndarray, data: np.ndarray) -> None:
        self.lengths = np.asarray(lengths, np.int64)
        self.data = np.asarray(data, np.uint8).reshape(-1)
        self.offsets = np.concatenate([[0], np.cumsum(np.maximum(self.lengths, 0))])
        if self.offsets[-1] != len(self.data):
            raise ValueError(f"{len(self.data)} bytes for values of {int(self.offsets[-1])} bytes in all")

    def values(self) -> list[memoryview | None]:
        """Each row's value (None = NULL): views of `data`."""
        raw = memoryview(self.data)
        return [None if n < 0 else raw[o : o + n] for o, n in zip(self.offsets[:-1].tolist(), self.lengths.tolist())]


def null_field(n: int) -> Field:
    return Field(np.full(n, -1, np.int64), np.zeros(0, np.uint8))


def bytes_field(values: Sequence[bytes | None]) -> Field:
    """A field from each row's wire-format bytes (None = NULL)."""
    lengths = np.fromiter((-1 if v is None else len(v) for v in values), np.int64, len(values))
    return Field(lengths, np.frombuffer(b"".join(v for v in values if v is not None), np.uint8))


def text_field(values: Sequence[str | None]) -> Field:
    """Ids/texts to store (`strings_in`'s escape applied) as text's binary wire format (UTF-8), straight from the
    buffers of one Arrow string array: no Python object per row beyond the strings given."""
    arr = pa.array(strings_in(list(values)), pa.large_string())
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset : arr.offset + n + 1]
    body = arr.buffers()[2]
    data = np.frombuffer(body, np.uint8)[offsets[0] : offsets[-1]] if body is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    if arr.null_count:
        lengths = np.where(arr.is_valid().to_numpy(zero_copy_only=False), lengths, -1)
    return Field(lengths, data)


def vector_field(valid: np.ndarray, v: np.ndarray, dim: int) -> Field:
    """Vectors in pgvector's binary wire format (int16 dim, int16 0, float32 big-endian …), one numpy buffer; `v`
    holds the rows where `valid` is set (NULL elsewhere)."""
    stride = 4 + 4 * dim
    buf = np.empty((len(v), stride), np.uint8)
    buf[:, :4] = np.frombuffer(np.array([dim, 0], ">i2").tobytes(), np.uint8)
    buf[:, 4:].view(">f4")[:] = v  # the byte swap, written in place
    return Field(np.where(np.asarray(valid, bool), stride, -1), buf)


def jsonb_field(texts: Sequence[str | None]) -> Field:
    """Payloads' JSON texts in jsonb's wire format (`jsonb_in`); a column of empty payloads without a row loop."""
    if all(t is None or t == "{}" for t in texts):
        return Field(np.full(len(texts), len(_EMPTY_JSONB), np.int64), np.tile(np.frombuffer(_EMPTY_JSONB, np.uint8),
                                                                                len(texts)))
    return bytes_field([jsonb_in(t) for t in texts])


RUN_ROWS = 64  # rows a run of equal-length rows must average for `binary_copy` to build them as numpy blocks


def binary_copy(fields: Sequence[Field], chunk_bytes: int = 1 << 23) -> Iterator[bytes | memoryview]:
    """Rows of `fields` as PostgreSQL's binary COPY stream, in chunks of ~`chunk_bytes` (header and trailer
    included). Consecutive rows whose fields all have the same lengths (a run: bring-your-own vectors with ids of one
    length, no text, empty payloads) are one fixed-stride block, built by a few numpy slice copies; where runs are
    short (texts of many lengths), each row's parts are joined as before (one join per row: psycopg's dumpers per
    field cost 1.4 s of every 100k-row write of four fields). Row order is kept."""
    n = len(fields[0].lengths) if fields else 0
    if n == 0:
        yield _COPY_HEADER + b"\xff\xff"
        return
    count = struct.pack("!h", len(fields))
    lengths = np.stack([f.lengths for f in fields], 1)
    cuts = np.flatnonzero((lengths[1:] != lengths[:-1]).any(1)) + 1
    if len(cuts) + 1 > max(16, n // RUN_ROWS):
        yield from _row_by_row(fields, count, chunk_bytes)
        return
    yield _COPY_HEADER
    bounds = np.concatenate([[0], cuts, [n]]).tolist()
    for a, b in zip(bounds[:-1], bounds[1:]):
        run = lengths[a].tolist()
        stride = 2 + sum(4 + max(x, 0) for x in run)
        step = max(1, chunk_bytes // stride)
        for s in range(a, b, step):
            r = min(step, b - s)
            out = np.empty((r, stride), np.uint8)
            out[:, :2] = np.frombuffer(count, np.uint8)
            col = 2
            for f, x in zip(fields, run):
                out[:, col : col + 4] = np.frombuffer(struct.pack("!i", x), np.uint8)
                col += 4
                if x > 0:
                    o = int(f.offsets[s])
                    out[:, col : col + x] = f.data[o : o + r * x].reshape(r, x)
                    col += x
            yield out.data.cast("B")
    yield b"\xff\xff"


def _row_by_row(fields: Sequence[Field], count: bytes, chunk_bytes: int) -> Iterator[bytes]:
    size = struct.Struct("!i").pack
    out, held = [_COPY_HEADER], len(_COPY_HEADER)
    per_row = 2 + 4 * len(fields)  # the field count and each field's length (or NULL) word
    for row in zip(*(f.values() for f in fields)):
        out.append(count)
        held += per_row
        for v in row:
            if v is None:
                out.append(_NULL)
            else:
                out += (size(len(v)), v)
                held += len(v)
        if held >= chunk_bytes:
            yield b"".join(out)
            out, held = [], 0
    out.append(b"\xff\xff")
    yield b"".join(out)


def jsonb_in(text: str | None) -> bytes:
    """A payload's JSON text in jsonb's binary wire format (version 1, then the text), written as is into a binary
    COPY (no JSON encoder run per row: 1 s of every 100k-row write before). The text goes as it is unless it holds a
    backslash (then NUL or a backslash may be inside a string, which the reversible escape must rewrite)."""
    if not text or text == "{}":
        return _EMPTY_JSONB
    if "\\" in text:
        text = json.dumps(esc_json(json.loads(text)))
    return b"\x01" + text.encode()


_EMPTY_JSONB = b"\x01{}"


def payload_of(text: str) -> dict[str, Any]:
    """A stored payload's JSON text -> the payload (escapes reversed; only texts with a backslash can hold any)."""
    return json.loads(text) if "\\" not in text else unesc_json(json.loads(text))


# ------------------------------------------------------------ column conversion
def _flagged(arr: pa.Array, needles: Sequence[str]) -> np.ndarray:
    """Positions of the strings of `arr` holding any of `needles` (nulls never)."""
    hit = None
    for n in needles:
        m = pc.match_substring(arr, n)
        hit = m if hit is None else pc.or_(hit, m)
    return np.flatnonzero(hit.fill_null(False).to_numpy(zero_copy_only=False))


def strings_in(values: list) -> list:
    """Ids/texts to store: the reversible escape applied (only to the few values holding a backslash or NUL)."""
    if not values:
        return values
    arr = pa.array(values, pa.string())
    bad = _flagged(arr, ("\\", "\x00"))
    if len(bad):
        values = list(values)
        for j in bad:
            values[j] = esc(values[j])
    return values


def strings_out(values: Sequence[str | None]) -> pa.Array:
    """Stored ids/texts -> one Arrow string array, escapes reversed (only where a backslash shows one)."""
    arr = pa.array(values, pa.string())
    bad = _flagged(arr, ("\\",)) if len(arr) else []
    if len(bad):
        fixed = list(values)
        for j in bad:
            fixed[j] = unesc(fixed[j])
        arr = pa.array(fixed, pa.string())
    return arr


def payloads_out(values: Sequence[str]) -> pa.Array:
    """Stored payloads (jsonb's own text form) -> one Arrow string array of JSON objects. Texts holding a backslash
    (an escape, or a JSON string escape) are decoded, unescaped and re-encoded; the rest are passed as they are."""
    arr = pa.array(values, pa.string())
    bad = _flagged(arr, ("\\",)) if len(arr) else []
    if len(bad):
        fixed = list(values)
        for j in bad:
            fixed[j] = json.dumps(payload_of(fixed[j]), ensure_ascii=False, sort_keys=True)
        arr = pa.array(fixed, pa.string())
    return arr


def vectors_out(values: Sequence[bytes | None], dim_of: Callable[[], int]) -> pa.Array:
    """pgvector's binary wire format per row (None = no vector) -> a fixed-size-list array, from one numpy buffer.
    `dim_of()` is asked only when no row has a vector."""
    n = len(values)
    raw = pa.array(values, pa.binary())
    valid = np.asarray(raw.is_valid().to_numpy(zero_copy_only=False), bool)
    m = int(valid.sum())
    if m == 0:
        return pa.nulls(n, type=vector_type(dim_of()))
    data = np.frombuffer(raw.buffers()[2], np.uint8)
    offsets = np.frombuffer(raw.buffers()[1], np.int32, count=n + 1)
    total = int(offsets[-1] - offsets[0])
    stride = total // m
    got = int(data[offsets[0]]) << 8 | int(data[offsets[0] + 1])  # the header's int16 dimension
    if stride * m != total or 4 + 4 * got != stride:
        raise ValueError("vectors of different dimensions in one column")
    rows = data[offsets[0] : offsets[0] + total].reshape(m, stride)[:, 4:]
    x = rows.view(">f4").astype(np.float32)
    if m == n:
        return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), got)
    full = np.zeros((n, got), np.float32)
    full[valid] = x
    return pa.FixedSizeListArray.from_arrays(pa.array(full.reshape(-1)), got, mask=pa.array(~valid))

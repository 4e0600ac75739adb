"""Values between repspace and PostgreSQL, without per-value Python where it can be helped.

PostgreSQL ``text``/``jsonb`` cannot hold NUL characters; ids, texts and payload strings are stored with a reversible
escape (``\\`` -> ``\\\\``, NUL -> ``\\0``), applied to filter values too, so every value round-trips unchanged and
filters still compare exactly. Vectors travel in pgvector's binary format, gathered into one numpy buffer per column.
"""

from __future__ import annotations

import json
import re
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


def binary_copy(columns: Sequence[Sequence[bytes | memoryview | None]], chunk_bytes: int = 1 << 23) -> Iterator[bytes]:
    """Rows of fields already in their types' wire format (None = NULL), column by column, as PostgreSQL's binary COPY
    stream in chunks of ~`chunk_bytes` (header and trailer included): the parts of many rows joined at once (a field
    is copied once, into its chunk), instead of psycopg's dumpers per field (`copy.write_row` cost 1.4 s of every
    100k-row write of four fields)."""
    import struct

    count = struct.pack("!h", len(columns))
    size = struct.Struct("!i").pack
    out, held = [_COPY_HEADER], len(_COPY_HEADER)
    per_row = 2 + 4 * len(columns)  # the field count and each field's length (or NULL) word
    for row in zip(*columns):
        out.append(count)
        held += per_row
        for f in row:
            if f is None:
                out.append(_NULL)
            else:
                out += (size(len(f)), f)
                held += len(f)
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


def text_wire(values: Sequence[str | None]) -> list[bytes | None]:
    """Ids/texts to store (`strings_in`'s escape applied) in text's binary wire format, UTF-8, for `binary_copy`."""
    return [None if v is None else v.encode() for v in strings_in(list(values))]


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


def vectors_in(valid: np.ndarray, v: np.ndarray, dim: int) -> list[memoryview | None]:
    """Vectors -> pgvector's binary wire format (int16 dim, int16 0, float32 big-endian ...) per row: views of one
    numpy buffer (no copy per row); None where a row has no vector."""
    m = len(v)
    stride = 4 + 4 * dim
    buf = np.empty((m, stride), np.uint8)
    buf[:, :4] = np.frombuffer(np.array([dim, 0], ">i2").tobytes(), np.uint8)
    buf[:, 4:].view(">f4")[:] = v  # the byte swap, written in place
    raw = memoryview(buf.reshape(-1))
    rows = [raw[i : i + stride] for i in range(0, m * stride, stride)]
    if len(valid) == m:
        return rows
    out: list[memoryview | None] = [None] * len(valid)
    for pos, r in zip(np.flatnonzero(valid).tolist(), rows):
        out[pos] = r
    return out


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

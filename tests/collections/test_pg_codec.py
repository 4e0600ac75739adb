"""The binary COPY stream (`collections/pg_codec.py`): runs of equal-length rows built as numpy blocks give the same
bytes as the row-by-row join, and PostgreSQL itself (the independent decoder) reads back every value: ids, NULL and
non-NULL texts (the reversible escape included), jsonb payloads and pgvector vectors, NULL vectors too."""

import json

import numpy as np
import pytest

from repspace.collections import pg_codec
from repspace.collections.pg_codec import (Field, binary_copy, bytes_field, jsonb_field, null_field, text_field,
                                           vector_field)


def _rows(n=300, dim=5):
    rng = np.random.default_rng(0)
    ids = [f"i{j}" for j in range(n)]  # runs of one length: i0-i9, i10-i99, i100-i299
    ids[7] = "back\\slash"  # escaped on the way in
    texts = [None if j % 50 else f"text {j} ü \x00 nul" for j in range(n)]
    payloads = [None if j % 3 else json.dumps({"k": j, "s": "é"}) for j in range(n)]
    valid = np.ones(n, bool)
    valid[[3, 150]] = False
    v = rng.standard_normal((int(valid.sum()), dim)).astype(np.float32)
    return ids, texts, payloads, valid, v


def _fields(ids, texts, payloads, valid, v):
    return [text_field(ids), text_field(texts), jsonb_field(payloads), vector_field(valid, v, v.shape[1])]


def _stream(fields, **kw):
    return b"".join(bytes(c) for c in binary_copy(fields, **kw))


def test_runs_and_rows_give_the_same_stream(monkeypatch):
    rows = _rows()
    cases = [_fields(*rows),
             [text_field(rows[0]), null_field(len(rows[0])), jsonb_field([None] * len(rows[0])),
              vector_field(rows[3], rows[4], 5)]]
    monkeypatch.setattr(pg_codec, "RUN_ROWS", 1)  # numpy blocks per run, however short the runs
    for fields in cases:
        by_row = b"".join(pg_codec._row_by_row(fields, b"\x00\x04", 1 << 23))  # every row joined on its own
        assert _stream(fields) == by_row
        assert _stream(fields, chunk_bytes=64) == by_row  # runs cut into chunks of a few rows
    assert _stream([null_field(0), text_field([])]) == b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8 + b"\xff\xff"  # no rows
    # the header, the first row's field count, the trailer
    s = _stream(cases[1])
    assert s.startswith(b"PGCOPY\n\xff\r\n\x00") and s.endswith(b"\xff\xff") and s[19:21] == b"\x00\x04"


def test_fields():
    f = bytes_field([b"ab", None, b"", b"xyz"])
    assert f.lengths.tolist() == [2, -1, 0, 3] and bytes(f.data) == b"abxyz"
    assert [None if x is None else bytes(x) for x in f.values()] == [b"ab", None, b"", b"xyz"]
    t = text_field(["a", None, "b\\c", "é"])
    assert t.lengths.tolist() == [1, -1, 4, 2] and bytes(t.data) == "ab\\\\cé".encode()
    assert jsonb_field([None, "{}"]).lengths.tolist() == [3, 3]
    with pytest.raises(ValueError):
        Field([3], np.zeros(2, np.uint8))


@pytest.mark.parametrize("run_rows", [1, 10**9])  # numpy blocks per run / every row joined on its own
def test_postgresql_reads_the_stream_back(pg_dsn, monkeypatch, run_rows):
    import psycopg
    from pgvector.psycopg import register_vector

    monkeypatch.setattr(pg_codec, "RUN_ROWS", run_rows)
    ids, texts, payloads, valid, v = _rows()
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        conn.execute("CREATE TEMP TABLE t (id text, text text, payload jsonb, v vector(5))")
        with conn.cursor().copy("COPY t (id, text, payload, v) FROM STDIN WITH (FORMAT BINARY)") as copy:
            for chunk in binary_copy(_fields(ids, texts, payloads, valid, v), chunk_bytes=256):
                copy.write(chunk)
        got = {r[0]: r[1:] for r in conn.execute("SELECT id, text, payload, v FROM t").fetchall()}
    assert len(got) == len(ids)
    rows = iter(v)
    for j, i in enumerate(ids):
        text, payload, vec = got[pg_codec.esc(i)]
        assert text == pg_codec.esc(texts[j])
        assert payload == (json.loads(payloads[j]) if payloads[j] else {})
        if valid[j]:
            np.testing.assert_array_equal(vec.to_numpy(), next(rows))
        else:
            assert vec is None

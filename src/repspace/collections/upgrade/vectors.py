"""Bring the new model's vectors yourself: an upgrade started and backfilled from files of vectors made elsewhere
(a batch API, another cluster) — `.parquet`/`.arrow`/`.feather`/`.jsonl` with id + vector, or `.npy` + ids.

Every file is checked whole before anything is written: one dimension (the new slot's), finite values, unique ids,
and no id the collection does not hold. The backfill writes only items still without a new vector, in fixed
batches, so a file re-read after a kill (or a later file) does only what is missing.
"""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from repspace.collections.store import vectors_of
from repspace.collections.upgrade.backfill import (REINDEX_ROWS, fraction, item_hash, reindex_after, serving_upgrade,
                                                  settle)
from repspace.errors import DimensionMismatchError, InvalidInputError, InvalidVectorsError
from repspace.ops.idset import IdRows

MIN_SAMPLE = 20
CHUNK = 65536  # rows checked, hashed or written at a time


class NewVectors:
    """A file of the new model's vectors, checked whole and read in parts: ids in one Arrow array, the vectors
    memory-mapped (`.npy`: a 10M × 384 file is never copied into memory; Parquet / Arrow IPC / JSON lines: read a
    batch at a time into an unlinked temporary file, mapped the same way);
    `rows_in_collection[r]` is the collection's row of the file's r-th id."""

    def __init__(self, ids: pa.Array, vectors: np.ndarray, rows_in_collection: np.ndarray) -> None:
        self.ids, self.vectors, self.rows_in_collection = ids, vectors, rows_in_collection

    def __len__(self) -> int:
        return len(self.ids)

    def part(self, rows: np.ndarray) -> tuple[list[str], np.ndarray]:
        """(ids, float32 vectors) of the file's rows (sorted rows read a memory-mapped file in one pass)."""
        rows = np.asarray(rows, np.int64)
        return self.ids.take(pa.array(rows)).to_pylist(), np.asarray(self.vectors[rows], np.float32)


def collection_ids(coll, column: str | None) -> tuple[IdRows, np.ndarray]:
    """Every stored item's id (an Arrow column, looked up by hash) and whether it has a vector in `column`."""
    ids, has = [], []
    for batch in coll.store.scan(["id"] + ([column] if column else [])):
        ids.append(batch.column("id").cast(pa.large_string()))
        has.append(vectors_of(batch.column(column), batch.schema.field(column).type.list_size)[0] if column
                   else np.zeros(batch.num_rows, bool))
    return IdRows(pa.concat_arrays(ids) if ids else pa.array([], pa.large_string())), (
        np.concatenate(has) if has else np.zeros(0, bool))


def read_new_vectors(coll, path: str | Path, *, model: str, dim: int | None, ids_file: str | Path | None = None,
                     live: IdRows | None = None) -> NewVectors:
    """A file of the new model's vectors, checked against the collection's ids (`live`: read here when None): one
    dimension, finite values, unique non-empty ids, none the collection does not hold."""
    path = Path(path)
    if path.suffix == ".npy" and path.is_file():
        ids, vectors = _npy(path, ids_file, model)
    elif path.suffix in ARROW_SUFFIXES + (".jsonl",) and path.is_file():
        ids, vectors = _arrow(path)
    else:
        from repspace.spaces.external import read_vectors

        space = read_vectors(path, model=model, ids_file=ids_file)
        ids, vectors = pa.array(space.ids, pa.large_string()), np.asarray(space.vectors, np.float32)
    if dim is not None and vectors.shape[1] != dim:
        raise DimensionMismatchError(f"{path} holds {vectors.shape[1]}-d vectors; the new model's are {dim}-d",
                                     param="vectors")
    live = live if live is not None else collection_ids(coll, None)[0]
    rows = live.rows(ids)
    extra = np.flatnonzero(rows < 0)
    if len(extra):
        shown = ids.take(pa.array(extra[:3])).to_pylist()
        raise InvalidInputError(f"{path}: {len(extra)} id(s) the collection does not hold (e.g. "
                                f"{', '.join(map(repr, shown))}); nothing was written", param="vectors")
    if len(np.unique(rows)) != len(rows):  # two file rows found the same item: an id given twice
        _, first = np.unique(rows, return_index=True)
        twice = ids.take(pa.array(np.setdiff1d(np.arange(len(rows)), first)[:3])).to_pylist()
        raise InvalidInputError(f"{path}: duplicate ids, e.g. {', '.join(map(repr, twice))}; ids must be unique",
                                param="vectors")
    return NewVectors(ids, vectors, rows)


def _npy(path: Path, ids_file: str | Path | None, model: str) -> tuple[pa.Array, np.ndarray]:
    """A `.npy` file memory-mapped and checked a chunk at a time, and its ids (a line each of `ids_file`, or a JSON
    list in a `.json` file; the row numbers without one)."""
    from repspace.spaces.external import read_vectors

    try:
        vectors = np.load(path, allow_pickle=False, mmap_mode="r")
    except ValueError:
        vectors = None
    if vectors is None or vectors.ndim != 2 or vectors.dtype != np.float32 or not len(vectors):
        space = read_vectors(path, model=model, ids_file=ids_file)  # other dtypes or shapes: its checks and messages
        return pa.array(space.ids, pa.large_string()), np.asarray(space.vectors, np.float32)
    for s in range(0, len(vectors), CHUNK):
        if not np.isfinite(vectors[s : s + CHUNK]).all():
            bad = s + int(np.flatnonzero(~np.isfinite(vectors[s : s + CHUNK]).all(axis=1))[0])
            raise InvalidVectorsError(f"{path}: row {bad} holds a NaN or infinite value", param="vectors")
    if ids_file is None:
        ids = pa.array(np.arange(len(vectors)).astype(str), pa.large_string())
    else:
        ids = _ids_file(Path(ids_file))
    if len(ids) != len(vectors):
        raise InvalidInputError(f"{len(ids)} ids for {len(vectors)} vectors; they must match", param="ids_file")
    if len(ids) and not np.asarray(pc.binary_length(ids)).all():
        raise InvalidInputError(f"{ids_file}: ids must be non-empty strings", param="ids_file")
    return ids, vectors


ARROW_SUFFIXES = (".parquet", ".arrow", ".feather", ".ipc")
PARQUET_ROWS = 8192  # rows decoded at a time (500k × 384 read through 1 MiB buffers: peak 124 MiB, at 65,536: 577)


def _record_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """A Parquet file's row groups, an Arrow IPC file's (or stream's) record batches or a JSON lines file's lines,
    one batch at a time."""
    import pyarrow.parquet as pq

    if path.suffix == ".jsonl":
        yield from _jsonl_batches(path)
        return
    try:
        if path.suffix == ".parquet":  # unbuffered or pre-buffered reads hold a whole row group (1M rows by default)
            f = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
            yield from f.iter_batches(batch_size=min(CHUNK, PARQUET_ROWS), use_threads=False)
            return
        with pa.memory_map(str(path)) as src:
            try:
                reader = pa.ipc.open_file(src)
                batches: Any = (reader.get_batch(i) for i in range(reader.num_record_batches))
            except pa.ArrowInvalid:  # an Arrow IPC stream rather than a file
                src.seek(0)
                batches = pa.ipc.open_stream(src)
            yield from batches
    except (OSError, pa.ArrowException) as e:
        raise InvalidInputError(f"{path} is not a readable {path.suffix[1:]} file: {e}", param="vectors") from None


def _jsonl_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """JSON lines ({"id", "vector"} a line; the row number where a line has no id) as record batches of
    `PARQUET_ROWS` lines: a line that is not such an object is refused with its number."""
    from repspace._io import json_objects

    ids: list[str] = []
    vecs: list[Any] = []
    rows = 0

    def batch() -> pa.RecordBatch:
        try:
            col = pa.array(vecs)
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise InvalidVectorsError(f"{path}: rows {rows - len(vecs)}–{rows - 1}: 'vector' must be a list "
                                      f"of numbers ({e})", param="vectors") from None
        return pa.record_batch([pa.array(ids, pa.large_string()), col], names=["id", "vector"])

    with open(path, encoding="utf-8") as fh:
        for _, obj in json_objects(path, fh, "vector", " (each line: {\"id\": …, \"vector\": [...]})",
                                   param="vectors"):
            ids.append(str(obj.get("id", rows)))
            vecs.append(obj["vector"])
            rows += 1
            if len(ids) == PARQUET_ROWS:
                yield batch()
                ids, vecs = [], []
    if ids:
        yield batch()


def _arrow(path: Path, id_column: str = "id", vector_column: str = "vector") -> tuple[pa.Array, np.ndarray]:
    """A Parquet / Arrow IPC / JSON lines file of (id, vector) rows read a batch at a time: each batch's vectors checked (one
    dimension, no nulls, finite) and written as float32 to an unlinked temporary file (`$TMPDIR`: disk of the
    vectors' float32 size, freed when they are no longer used, a kill included), which is then memory-mapped; the
    ids kept in Arrow (the row numbers where the file has no id column). Memory: one batch."""
    from repspace.spaces.external import pc_lengths

    ids: list[pa.Array] = []
    n, d = 0, None
    with tempfile.TemporaryFile(prefix="repspace-vectors-") as spill:
        for batch in _record_batches(path):
            names = batch.schema.names
            if vector_column not in names:
                raise InvalidInputError(f"{path} has no vector column {vector_column!r} (columns: {', '.join(names)})",
                                        param="vectors")
            col = batch.column(vector_column)
            if not ((pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type)
                     or pa.types.is_large_list(col.type))
                    and (pa.types.is_floating(col.type.value_type) or pa.types.is_integer(col.type.value_type)
                         or pa.types.is_null(col.type.value_type))):
                raise InvalidVectorsError(f"{path}: column {vector_column!r} is {col.type}, not a list of numbers",
                                          param="vectors")
            if col.null_count:
                raise InvalidVectorsError(f"{path}: column {vector_column!r} has null vector(s) (from row {n} on)",
                                          param="vectors")
            lengths = pc_lengths(col) if len(col) else []
            d = d if d is not None or not lengths else lengths[0]
            if any(x != d for x in lengths):
                raise InvalidVectorsError(f"{path}: vectors of different lengths {sorted({d, *lengths})[:5]} in "
                                          f"{vector_column!r}", param="vectors")
            v = np.ascontiguousarray(np.asarray(col.flatten().to_numpy(zero_copy_only=False), np.float32))
            v = v.reshape(len(col), d or 0)
            finite = np.isfinite(v).all(axis=1)
            if not finite.all():
                raise InvalidVectorsError(f"{path}: row {n + int(np.flatnonzero(~finite)[0])} holds a NaN or infinite "
                                          "value", param="vectors")
            _staged(path, lambda: spill.write(v.tobytes()))
            try:
                ids.append(batch.column(id_column).cast(pa.large_string()) if id_column in names
                           else pa.array(np.arange(n, n + len(col)).astype(str), pa.large_string()))
            except pa.ArrowException as e:
                raise InvalidInputError(f"{path}: column {id_column!r} cannot be read as text ids ({e})",
                                        param="vectors") from None
            n += len(col)
        if not n or not d:
            raise InvalidInputError(f"{path} holds no vectors", param="vectors")
        _staged(path, spill.flush)
        vectors = np.memmap(spill, np.float32, "r", shape=(n, d))  # the mapping outlives the closed file
    all_ids = pa.concat_arrays(ids)
    if all_ids.null_count or not np.asarray(pc.binary_length(all_ids.fill_null(""))).all():
        raise InvalidInputError(f"{path}: column {id_column!r} holds null or empty ids; ids must be non-empty",
                                param="vectors")
    return all_ids, vectors


def _staged(path: Path, write) -> None:
    try:
        write()
    except OSError as e:
        raise InvalidInputError(f"no room to stage the vectors of {path} in {tempfile.gettempdir()} ({e}); point "
                                "TMPDIR at a disk with room, or give a .npy file", param="vectors") from None


def _ids_file(path: Path) -> pa.Array:
    import json

    if not path.is_file():
        raise InvalidInputError(f"{path} does not exist", param="ids_file")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            listed = json.loads(text)
        except ValueError as e:
            raise InvalidInputError(f"{path} is not a JSON list of ids: {e}", param="ids_file") from None
        if not isinstance(listed, list):
            raise InvalidInputError(f"{path} is not a JSON list of ids", param="ids_file")
        return pa.array([str(i) for i in listed], pa.large_string())
    lines = pc.split_pattern_regex(pa.array([text], pa.large_string()), "\r\n|\r|\n").flatten()  # any line end
    return lines.filter(pc.not_equal(lines, ""))


def _sample(nv: NewVectors, sample: int, seed: int) -> np.ndarray:
    """The file rows of the `sample` ids first in the order of `item_hash(f"{seed}:{id}")` (the text path's sample
    order, `lifecycle.start`), in that order; streamed: memory for the sample only."""
    def keyed():
        for s in range(0, len(nv), CHUNK):
            for r, i in enumerate(nv.ids[s : s + CHUNK].to_pylist(), start=s):
                yield item_hash(f"{seed}:{i}"), r

    return np.asarray([r for _, r in heapq.nsmallest(sample, keyed())], np.int64)


def start_with_vectors(coll, model: str, path: str | Path, *, dim: int, ids_file: str | Path | None = None,
                       sample: int = 1000, method: str = "procrustes", seed: int = 0,
                       side_table: bool = False) -> dict[str, Any]:
    """Start an upgrade to an external `model` from its vectors in `path` (at least `sample` of the collection's
    items, or all it holds): they fill the new slot and fit the adapter; the fusion is the neutral one (there are
    no new-model queries to fit it on) and the gate is not measured (switch with force, or measure your own)."""
    from repspace.collections.upgrade.lifecycle import start_from

    read = coll.reload()
    nv = read_new_vectors(coll, path, model=model, dim=dim, ids_file=ids_file)
    if len(nv) < min(sample, MIN_SAMPLE):
        raise InvalidInputError(f"{path} holds {len(nv)} item(s); the sample needs at least {MIN_SAMPLE}",
                                param="vectors")
    chosen_rows = _sample(nv, sample, seed)
    chosen, vecs = nv.part(chosen_rows)
    pos = {i: r for r, i in enumerate(chosen)}
    out = start_from(coll, read, model, chosen, lambda order, _texts: vecs[[pos[i] for i in order]], method=method,
                     seed=seed, sample=len(chosen), keep=True, golden=None, evaluate_gate=False,
                     side_table=side_table, dim=dim)
    rest = np.setdiff1d(np.arange(len(nv)), chosen_rows)  # the file's other vectors fill the slot too
    _write(coll, coll.meta.slot(coll.meta.open_upgrade().new).name, nv, rest)
    return {**out, "from_file": len(nv), "fraction": fraction(coll)}


def _write(coll, slot: str, nv: NewVectors, rows: np.ndarray, batch_size: int = 8192) -> None:
    for s in range(0, len(rows), batch_size):
        ids, vecs = nv.part(rows[s : s + batch_size])
        coll.update_vectors(slot, ids, vecs)
        reindex_after(coll, s, s + len(ids))
    if len(rows) >= REINDEX_ROWS:
        settle(coll)


def backfill_from_file(coll, path: str | Path, *, ids_file: str | Path | None = None,
                       batch_size: int = 8192) -> dict[str, Any]:
    """Fill the open upgrade's new slot from a file of the new model's vectors: items that have none yet (resumable:
    re-running with the same or a later file writes only what is still missing)."""
    up = serving_upgrade(coll)
    new = coll.slot(up.new)
    live, has_vec = collection_ids(coll, new.column)
    nv = read_new_vectors(coll, path, model=new.model, dim=new.dim, ids_file=ids_file, live=live)
    todo = np.flatnonzero(~has_vec[nv.rows_in_collection])
    _write(coll, new.name, nv, todo, batch_size)
    return {"backfilled": len(todo), "already": len(nv) - len(todo), "fraction": fraction(coll)}

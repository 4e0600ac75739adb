"""Bring your own vectors: embeddings made elsewhere (a hosted API, another library) as a `Space`.

Accepted files:
    vectors.npy (+ ids file)   (n, d) numeric array; ids from `ids_file` (one per line, or .json list) or row numbers
    .parquet / .arrow / .feather   an id column and a list / fixed-size-list vector column
    .jsonl                     one object per line with "id" and "vector" (optional "label")

Validated: one dimension, finite values, unique non-empty ids. Only safe formats are read
(`np.load(allow_pickle=False)`, Arrow, JSON).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from repspace._io import json_objects
from repspace.errors import InvalidInputError, InvalidVectorsError
from repspace.spaces.space import Space

VECTOR_SUFFIXES = (".npy", ".parquet", ".arrow", ".feather", ".ipc", ".jsonl")


def _table(path: Path):
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    try:
        if path.suffix == ".parquet":
            return pq.read_table(path)
        try:
            return feather.read_table(path)
        except Exception:  # noqa: BLE001 - an Arrow IPC stream rather than a file
            with pa.memory_map(str(path)) as src:
                return pa.ipc.open_stream(src).read_all()
    except Exception as e:  # noqa: BLE001
        raise InvalidInputError(f"{path} is not a readable {path.suffix[1:]} file: {e}") from None


def has_vectors(path: str | Path, vector_column: str = "vector") -> bool:
    """Whether an input file holds vectors (rather than texts to encode)."""
    path = Path(path)
    if path.suffix == ".npy":
        return True
    if path.suffix in (".parquet", ".arrow", ".feather", ".ipc"):
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names if path.suffix == ".parquet" else _table(path).column_names
        except Exception:  # noqa: BLE001
            return False
        return vector_column in names
    if path.suffix == ".jsonl":
        try:
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        return vector_column in json.loads(line)
        except (OSError, ValueError):
            return False
    return False


def _matrix(rows: Any, path: Path, column: str) -> np.ndarray:
    try:
        arr = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidVectorsError(f"{path}: column {column!r} holds vectors of different lengths or non-numbers") from None
    if arr.ndim != 2:
        raise InvalidVectorsError(f"{path}: column {column!r} must hold one vector per row (got shape {arr.shape})")
    return arr.astype(np.float32)


def read_vectors(path: str | Path, *, model: str, model_version: str = "", ids_file: str | Path | None = None,
                 id_column: str = "id", vector_column: str = "vector", label_column: str = "label") -> Space:
    """Read external embeddings into a validated `Space` of model `model`."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"{path} does not exist", param="path")
    if not model or not model.strip():
        raise InvalidInputError("model is empty: name the model that made these vectors", param="model")
    labels = None
    if path.suffix == ".npy":
        try:
            vectors = np.load(path, allow_pickle=False, mmap_mode="r")
        except ValueError as e:
            raise InvalidInputError(f"{path}: not a plain numeric .npy array ({e}); pickled arrays are refused",
                                    param="path") from None
        if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.number):
            raise InvalidVectorsError(f"{path}: expected a 2-D numeric array, got shape {vectors.shape} {vectors.dtype}",
                                      param="path")
        if ids_file is None:
            ids = [str(i) for i in range(vectors.shape[0])]
        else:
            ids_path = Path(ids_file)
            text = ids_path.read_text(encoding="utf-8")
            ids = json.loads(text) if ids_path.suffix == ".json" else [line for line in text.splitlines() if line != ""]
        vectors = np.asarray(vectors, dtype=np.float32)
    elif path.suffix == ".jsonl":
        ids, rows, labs = [], [], []
        with open(path, encoding="utf-8") as fh:
            for _, obj in json_objects(path, fh, vector_column, " (set vector_column)", param="vector_column"):
                ids.append(str(obj.get(id_column, len(ids))))
                rows.append(obj[vector_column])
                labs.append(obj.get(label_column))
        if not rows:
            raise InvalidInputError(f"{path} holds no vectors", param="path")
        vectors = _matrix(rows, path, vector_column)
        labels = labs if any(lab is not None for lab in labs) else None
    elif path.suffix in (".parquet", ".arrow", ".feather", ".ipc"):
        table = _table(path)
        if vector_column not in table.column_names:
            raise InvalidInputError(f"{path} has no vector column {vector_column!r} (columns: {', '.join(table.column_names)}); "
                                    "name it with vector_column", param="vector_column")
        col = table.column(vector_column).combine_chunks()
        import pyarrow as pa

        if not (pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type)):
            raise InvalidVectorsError(f"{path}: column {vector_column!r} is {col.type}, not a list of numbers",
                                      param="vector_column")
        if col.null_count:
            raise InvalidVectorsError(f"{path}: column {vector_column!r} has {col.null_count} null vector(s)")
        lengths = set(pc_lengths(col))
        if len(lengths) != 1:
            raise InvalidVectorsError(f"{path}: vectors of different lengths {sorted(lengths)[:5]} in {vector_column!r}")
        d = lengths.pop()
        vectors = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, d)
        ids = ([str(x) for x in table.column(id_column).to_pylist()] if id_column in table.column_names
               else [str(i) for i in range(table.num_rows)])
        if label_column in table.column_names:
            labels = table.column(label_column).to_pylist()
    else:
        raise InvalidInputError(f"{path}: vectors are read from .npy (+ ids), .parquet/.arrow/.feather or .jsonl files",
                                param="path")
    if len(ids) != vectors.shape[0]:
        raise InvalidInputError(f"{len(ids)} ids for {vectors.shape[0]} vectors; they must match",
                                param="ids_file" if ids_file is not None else "id_column")
    return Space(vectors, ids, labels, model=model, model_version=model_version, extra={"imported_from": path.name})


def pc_lengths(col) -> list[int]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_fixed_size_list(col.type):
        return [col.type.list_size]
    return [int(x) for x in np.unique(pc.list_value_length(col).to_numpy(zero_copy_only=False))]

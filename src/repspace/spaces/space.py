"""`Space`: the vectors one model gives a set of items, with ids, labels and a manifest.

On disk a space is a directory::

    manifest.json    format tag, model, dimension, dtype, normalisation, dataset/view/split,
                     creation time, count and a sha256 checksum of vectors + ids
    vectors.npy      (n, d) float32, C order; loaded as a read-only memory map
    items.parquet    one row per vector: id (string), label (string or null)

Only safe formats are used (no pickle); every file is written through a temporary
directory that is renamed into place, so a crash never leaves a half-written space.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from repspace._io import atomic_dir, checksum_arrays, read_meta
from repspace.errors import (
    DimensionMismatchError,
    InvalidInputError,
    InvalidVectorsError,
    OutputExistsError,
    SpaceFormatError,
)
from repspace.ops.idset import IdRows
from repspace.ops.validation import check_finite  # noqa: F401  (lives in ops/; re-exported for old imports)

FORMAT = "repspace.space"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VECTORS = "vectors.npy"
ITEMS = "items.parquet"
_MANIFEST_KEYS = ("model", "model_version", "dataset", "view", "split", "created", "extra")


def check_ids(ids: Sequence[str]) -> list[str]:
    """Return ids as a list of non-empty strings, refusing duplicates (named in the error)."""
    out = list(map(str, ids))
    distinct = set(out)
    if "" in distinct:
        raise InvalidInputError("ids must be non-empty strings")
    if len(distinct) != len(out):
        seen: set[str] = set()
        dups = []
        for i in out:
            if i in seen and i not in dups:
                dups.append(i)
            seen.add(i)
        shown = ", ".join(repr(d) for d in dups[:5])
        raise InvalidInputError(f"duplicate ids ({len(dups)} distinct), e.g. {shown}; ids must be unique")
    return out


def _l2_normalized(vectors: np.ndarray, tol: float = 1e-3, sample: int = 10000) -> bool:
    if vectors.shape[0] == 0:
        return False
    rows = vectors[: min(sample, vectors.shape[0])]
    norms = np.linalg.norm(np.asarray(rows, dtype=np.float64), axis=1)
    return bool(np.all(np.abs(norms - 1.0) < tol))


class Space:
    """An embedding space: `vectors` (n, d) float32, unique string `ids`, optional `labels`.

    Metadata (model, dataset, view, ...) travels in the manifest. Construct from arrays,
    or `Space.load(path)` a saved one (memory-mapped, checksum verified).
    """

    def __init__(
        self,
        vectors: np.ndarray,
        ids: Sequence[str],
        labels: Sequence[Any] | np.ndarray | None = None,
        *,
        model: str = "unknown",
        model_version: str = "",
        dataset: str | None = None,
        view: str | None = None,
        split: str | None = None,
        normalized: bool | None = None,
        created: str | None = None,
        extra: dict[str, Any] | None = None,
        validate: bool = True,
    ) -> None:
        if not isinstance(vectors, np.ndarray):
            vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise InvalidVectorsError(f"vectors must be a 2-D array (n, d); got shape {vectors.shape}")
        if vectors.shape[0] == 0 or vectors.shape[1] == 0:
            raise InvalidVectorsError(f"a space needs at least one item and one dimension; got shape {vectors.shape}")
        if vectors.dtype != np.float32:
            if not np.issubdtype(vectors.dtype, np.number):
                raise InvalidVectorsError(f"vectors must be numeric; got dtype {vectors.dtype}")
            vectors = vectors.astype(np.float32)
        # unvalidated: a list copied; an Arrow id column (`ops.idset.IdRows`: a collection cache's) kept as it is
        ids = check_ids(ids) if validate else ids if isinstance(ids, IdRows) else list(ids)
        if len(ids) != vectors.shape[0]:
            raise InvalidInputError(f"{len(ids)} ids for {vectors.shape[0]} vectors; they must match")
        if labels is not None:
            labels = np.asarray([("" if l is None else str(l)) for l in labels]) if not isinstance(labels, np.ndarray) else labels.astype(str)
            if labels.shape[0] != vectors.shape[0]:
                raise InvalidInputError(f"{labels.shape[0]} labels for {vectors.shape[0]} vectors; they must match")
        if validate:
            check_finite(vectors)
        self.vectors: np.ndarray = vectors
        self.ids: list[str] = ids
        self.labels: np.ndarray | None = labels
        self.model = model
        self.model_version = model_version
        self.dataset = dataset
        self.view = view
        self.split = split
        self.normalized = _l2_normalized(vectors) if normalized is None else bool(normalized)
        self.created = created or datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.extra: dict[str, Any] = dict(extra or {})
        self._index: dict[str, int] | None = None
        self._checksum: str | None = None

    # ------------------------------------------------------------------ basics
    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def count(self) -> int:
        return int(self.vectors.shape[0])

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        src = ":".join(x for x in (self.dataset, self.view) if x) or "-"
        return f"Space(model={self.model!r}, source={src!r}, count={self.count}, dim={self.dim})"

    @property
    def checksum(self) -> str:
        if self._checksum is None:
            self._checksum = checksum_arrays(self.vectors, self.ids)
        return self._checksum

    @property
    def manifest(self) -> dict[str, Any]:
        """The JSON-able description saved as manifest.json."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "model_version": self.model_version,
            "dim": self.dim,
            "count": self.count,
            "dtype": str(self.vectors.dtype),
            "normalized": self.normalized,
            "dataset": self.dataset,
            "view": self.view,
            "split": self.split,
            "created": self.created,
            "has_labels": self.labels is not None,
            "checksum": self.checksum,
            "files": {"vectors": VECTORS, "items": ITEMS},
            "extra": self.extra,
        }

    def index_of(self, ids: Iterable[str]) -> np.ndarray:
        """Row numbers of `ids`; raises InvalidInputError naming unknown ids."""
        if self._index is None:
            self._index = {i: k for k, i in enumerate(self.ids)}
        idx, missing = [], []
        for i in ids:
            k = self._index.get(i)
            if k is None:
                missing.append(i)
            else:
                idx.append(k)
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5])
            raise InvalidInputError(f"{len(missing)} id(s) not in space {self.model!r}: {shown}")
        return np.asarray(idx, dtype=np.int64)

    def _derive(self, vectors: np.ndarray, ids: list[str], labels: np.ndarray | None, **changes: Any) -> "Space":
        meta = {k: getattr(self, k) for k in ("model", "model_version", "dataset", "view", "split")}
        meta["extra"] = dict(self.extra)
        meta.update(changes)
        return Space(vectors, ids, labels, validate=False, **meta)

    def take(self, rows: Sequence[int] | np.ndarray) -> "Space":
        """A new in-memory space with the given rows, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            raise InvalidInputError("selection is empty; a space needs at least one item")
        labels = None if self.labels is None else self.labels[rows]
        return self._derive(np.asarray(self.vectors[rows]), [self.ids[r] for r in rows], labels)

    def select(self, ids: Iterable[str]) -> "Space":
        """A new space with the items named by `ids`, in that order."""
        return self.take(self.index_of(ids))

    def head(self, n: int) -> "Space":
        return self.take(np.arange(min(n, self.count)))

    def truncate(self, dim: int) -> "Space":
        """Keep the first `dim` coordinates (Matryoshka prefix)."""
        if not 0 < dim <= self.dim:
            raise DimensionMismatchError(f"cannot truncate a {self.dim}-d space to {dim} dimensions")
        return self._derive(np.ascontiguousarray(self.vectors[:, :dim]), list(self.ids), self.labels, extra={**self.extra, "truncated_from": self.dim})

    def with_vectors(self, vectors: np.ndarray, **changes: Any) -> "Space":
        """Same ids and labels, new vectors (e.g. after a transform)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != self.count:
            raise InvalidVectorsError(f"expected ({self.count}, d) vectors, got {vectors.shape}")
        check_finite(vectors)
        out = self._derive(vectors, list(self.ids), self.labels, **changes)
        out.normalized = _l2_normalized(vectors)
        return out

    def normalize(self) -> "Space":
        """L2-normalised copy (zero rows stay zero)."""
        v = np.asarray(self.vectors, dtype=np.float32)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return self.with_vectors(v / np.maximum(norms, 1e-12))

    def append(self, other: "Space") -> "Space":
        """Concatenate another space of the same model and dimension (ids stay unique)."""
        if other.dim != self.dim:
            raise DimensionMismatchError(
                f"cannot append a {other.dim}-d space to a {self.dim}-d space; dimensions must match"
            )
        if other.model != self.model:
            raise InvalidInputError(f"cannot append vectors of model {other.model!r} to a space of model {self.model!r}")
        if (self.labels is None) != (other.labels is None):
            raise InvalidInputError("cannot append: one space has labels and the other has none")
        ids = check_ids(self.ids + other.ids)
        labels = None if self.labels is None else np.concatenate([self.labels, other.labels])
        return self._derive(np.concatenate([np.asarray(self.vectors), np.asarray(other.vectors)]), ids, labels)

    def aligned_with(self, other: "Space") -> tuple["Space", "Space"]:
        """Both spaces restricted to their shared ids, in the same order (self's order)."""
        other_ids = set(other.ids)
        shared = [i for i in self.ids if i in other_ids]
        if not shared:
            raise InvalidInputError(
                f"spaces {self.model!r} and {other.model!r} share no ids; they must describe the same items"
            )
        if len(shared) == self.count == other.count and shared == other.ids:
            return self, other
        return self.select(shared), other.select(shared)

    # ----------------------------------------------------------------- storage
    def save(self, path: str | Path, overwrite: bool = True) -> Path:
        """Write the space to directory `path` atomically; returns the path."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{path} exists; pass overwrite=True to replace it")
        if path.exists() and not path.is_dir():
            raise OutputExistsError(f"{path} exists and is not a directory")
        with atomic_dir(path) as tmp:
            _save_vectors(tmp / VECTORS, self.vectors)
            columns = {"id": pa.array(self.ids, pa.string())}
            if self.labels is not None:
                columns["label"] = pa.array([str(x) for x in self.labels], pa.string())
            pq.write_table(pa.table(columns), tmp / ITEMS)
            (tmp / MANIFEST).write_text(json.dumps(self.manifest, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True, verify: bool = True) -> "Space":
        """Load a saved space; `mmap` keeps vectors on disk, `verify` checks the checksum."""
        path = Path(path)
        manifest = read_manifest(path)
        vec_path = path / manifest.get("files", {}).get("vectors", VECTORS)
        items_path = path / manifest.get("files", {}).get("items", ITEMS)
        for p in (vec_path, items_path):
            if not p.is_file():
                raise SpaceFormatError(f"{path} is incomplete: {p.name} is missing")
        try:
            vectors = np.load(vec_path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except ValueError as e:
            raise SpaceFormatError(f"{vec_path} is not a plain .npy array (pickled objects are refused): {e}") from None
        except Exception as e:  # truncated header, garbage bytes
            raise SpaceFormatError(f"{vec_path} is corrupt or truncated: {e}") from None
        expected = (manifest["count"], manifest["dim"])
        if vectors.shape != expected or vectors.dtype != np.dtype(manifest.get("dtype", "float32")):
            raise SpaceFormatError(
                f"{vec_path} holds {vectors.shape} {vectors.dtype}, manifest says {expected} {manifest.get('dtype')}; "
                "the space is corrupt"
            )
        try:
            table = pq.read_table(items_path)
        except Exception as e:
            raise SpaceFormatError(f"{items_path} is corrupt or truncated: {e}") from None
        if "id" not in table.column_names or table.num_rows != manifest["count"]:
            raise SpaceFormatError(f"{items_path} does not match the manifest ({table.num_rows} rows); the space is corrupt")
        ids = table.column("id").to_pylist()
        labels = None
        if "label" in table.column_names:
            labels = np.asarray(table.column("label").to_pylist(), dtype=str)
        meta = {k: manifest.get(k) for k in _MANIFEST_KEYS}
        meta["model"] = meta["model"] or "unknown"
        meta["model_version"] = meta["model_version"] or ""
        space = cls(vectors, ids, labels, normalized=manifest.get("normalized"), validate=False, **meta)
        if verify:
            actual = checksum_arrays(vectors, ids)
            if actual != manifest.get("checksum"):
                raise SpaceFormatError(
                    f"{path}: checksum mismatch (stored {manifest.get('checksum')}, computed {actual}); "
                    "the vectors or ids were modified or damaged"
                )
            space._checksum = actual
        return space


def _save_vectors(path: Path, vectors: np.ndarray, chunk_rows: int = 65536) -> None:
    """Write (n, d) float32 as .npy in row chunks, so a memory-mapped source never loads whole."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=vectors.shape)
    for start in range(0, vectors.shape[0], chunk_rows):
        out[start : start + chunk_rows] = vectors[start : start + chunk_rows]
    out.flush()
    del out


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check a space's manifest; clear errors for files, pickles and foreign dirs."""
    path = Path(path)
    if not path.exists():
        raise SpaceFormatError(f"{path} does not exist")
    if not path.is_dir():
        with open(path, "rb") as fh:
            head = fh.read(2)
        kind = "a pickle file" if head[:1] == b"\x80" else "a file"
        raise SpaceFormatError(
            f"{path} is {kind}, not a repspace space directory (a directory with {MANIFEST}, {VECTORS}, {ITEMS}); "
            "pickles are never loaded"
        )
    manifest = read_meta(path, MANIFEST, FORMAT, "space")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise SpaceFormatError(
            f"{path} uses space format {manifest['format_version']}, newer than this repspace ({FORMAT_VERSION}); upgrade repspace"
        )
    for key in ("count", "dim"):
        if not isinstance(manifest.get(key), int) or manifest[key] <= 0:
            raise SpaceFormatError(f"{path / MANIFEST} is corrupt: {key!r} must be a positive integer")
    return manifest

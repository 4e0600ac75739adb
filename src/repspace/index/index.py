"""`Index`: a space made searchable by one of the index kinds in `repspace.index.kinds`, on faiss.

On disk an index is a space directory (manifest.json, vectors.npy, items.parquet; the
float vectors serve exact rescoring and funnel stages) plus `index.json` (spec, model) and the
kind's own files: `faiss.index.npy` (faiss's binary format, never pickle) for graph and quantised
indexes, `rotation.npy` for binary codes, `codes_*.npy` for sparse codes.
Search is by cosine: corpus and query vectors are L2-normalised (per prefix for funnels).

An index may be built through an adaptor (a saved compressor: PCA, Matryoshka adaptor, CSR): it keeps
the adaptor in `adaptor/` and applies it to the corpus at build and to every query at search, so
queries are always vectors of the index's model (or its text). CSR codes (spec `sparse`) are stored
sparse and searched with sparse products. Queries of another model are searched through an adapter
(a fitted translator into this index's space): `search_ids(..., adapter=)`, `search_text(..., adapter=)`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from repspace._io import atomic_dir, read_meta
from repspace.errors import DimensionMismatchError, InvalidInputError, SpaceFormatError
from repspace.index.kinds.base import Built, IndexSpec
from repspace.index.spec import parse_spec
from repspace.spaces import Space
from repspace.spaces.space import check_finite

FORMAT = "repspace.index"
#: index.json keys, in the order written (format_version 1)
MANIFEST_KEYS = ("format", "format_version", "spec", "model", "model_version", "dim", "input_dim", "count",
                 "has_faiss_index", "adaptor")


class Index:
    """A searchable space. Build with `Index.build(space, "HNSW32")`, then `search(queries, k)`."""

    def __init__(self, space: Space, spec: IndexSpec, adaptor: Any = None, adaptor_dim: int | None = None,
                 built: Built | None = None) -> None:
        spec.check_adaptor(adaptor)
        self.space = space
        self.spec = spec
        self.adaptor, self.adaptor_dim = adaptor, adaptor_dim
        if built is None:
            base = self._encode(np.asarray(space.vectors))
            built = base, spec.build(base)
        self._base, self._state = built

    def _encode(self, x: np.ndarray) -> Any:
        return self.spec.encode(x, self.adaptor, self.adaptor_dim)

    # ------------------------------------------------------------------ build
    @classmethod
    def build(cls, space: Space, spec: str | IndexSpec, adaptor: Any = None, adaptor_dim: int | None = None) -> Index:
        """Index `space` (n, d) with `spec`, optionally through a fitted compressor (at `adaptor_dim`)."""
        spec = parse_spec(spec) if isinstance(spec, str) else spec
        if adaptor is not None:
            adaptor.check_source(space)
            if adaptor_dim is not None:
                adaptor.transform(np.asarray(space.vectors[:1]), adaptor_dim)  # refuses a dimension it was not fitted for
            adaptor_dim = adaptor_dim or max(adaptor.dims_)
        spec.check_dim(adaptor_dim or space.dim)
        return cls(space, spec, adaptor=adaptor, adaptor_dim=adaptor_dim)

    # ----------------------------------------------------------------- search
    @property
    def dim(self) -> int:
        """Dimension searched (the adaptor's output, or the space's)."""
        return int(self._base.shape[1])

    @property
    def input_dim(self) -> int:
        """Dimension of query vectors: the index's model's."""
        return self.space.dim

    def memory_bytes(self) -> dict[str, int]:
        """Bytes of the first-stage structure searched, and of the float vectors kept for rescoring."""
        return self.spec.memory_bytes(self._base)

    def search(self, queries: np.ndarray, k: int = 10, ef_search: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """queries: (nq, dim) -> scores (nq, k) float32 and row indices (nq, k) int64 (-1 = none)."""
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[0] == 0:
            raise InvalidInputError(f"queries must be a non-empty (n, d) array; got shape {q.shape}")
        if q.shape[1] != self.input_dim:
            raise DimensionMismatchError(
                f"query vectors are {q.shape[1]}-d but index {self.spec} over {self.space.model!r} takes "
                f"{self.input_dim}-d; encode the queries with the same model (or pass them through an adapter)"
            )
        check_finite(q, what="query vectors")
        if k < 1:
            raise InvalidInputError("k must be at least 1")
        k = min(k, self.space.count)
        return self.spec.search(self._state, self._base, self._encode(q), k, ef_search)

    def search_ids(self, queries: np.ndarray | Space, k: int = 10, *, adapter: Any = None) -> list[list[tuple[str, float]]]:
        """Top-k (id, score) per query. `queries`: vectors of the index's model, or a Space; with `adapter`
        (a fitted translator into this index's space) they are of the adapter's source model and mapped first."""
        if adapter is not None:
            self._check_adapter(adapter)
            if isinstance(queries, Space):
                adapter.check_source(queries)
        if isinstance(queries, Space):
            queries = np.asarray(queries.vectors)
        if adapter is not None:
            queries = adapter.transform(queries)
        s, i = self.search(queries, k)
        return [[(self.space.ids[c], float(v)) for c, v in zip(row_i, row_s) if c >= 0] for row_i, row_s in zip(i, s)]

    def search_text(self, texts: Sequence[str], k: int = 10, *, adapter: Any = None,
                    device: str = "cpu") -> list[list[tuple[str, float]]]:
        """Top-k (id, score) per query text, encoded with the index's model (with `adapter`: its source model)."""
        from repspace.encoders import get_encoder

        if adapter is not None:
            self._check_adapter(adapter)
        model = adapter.source_model_ if adapter is not None and adapter.source_model_ else self.space.model
        return self.search_ids(get_encoder(model, device=device).encode_batch(list(texts)), k, adapter=adapter)

    def _check_adapter(self, adapter: Any) -> None:
        from repspace.ops.validation import check_adapter_target

        check_adapter_target(adapter, self.space.model, self.input_dim)

    # ---------------------------------------------------------------- storage
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        meta = {"format": FORMAT, "format_version": 1, "spec": str(self.spec), "model": self.space.model,
                "model_version": self.space.model_version, "dim": self.dim, "input_dim": self.input_dim,
                "count": self.space.count, "has_faiss_index": self.spec.has_faiss_index,
                "adaptor": None if self.adaptor is None else {"method": self.adaptor.name, "dim": self.adaptor_dim}}
        with atomic_dir(path) as tmp:
            self.space.save(tmp / "space")
            self.spec.save(self._state, self._base, tmp)
            if self.adaptor is not None:
                self.adaptor.save(tmp / "adaptor")
            (tmp / "index.json").write_text(json.dumps(meta, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Index:
        path = Path(path)
        meta = read_meta(path, "index.json", FORMAT, "index")
        space = Space.load(path / "space")
        if space.dim != meta.get("input_dim", meta.get("dim")) or space.count != meta.get("count"):
            raise SpaceFormatError(f"{path}: index.json does not match its vectors; the index is corrupt")
        spec = parse_spec(meta["spec"])
        adaptor = None
        if meta.get("adaptor"):
            from repspace.compress import Compressor

            adaptor = Compressor.load(path / "adaptor")
        adaptor_dim, dim = meta["adaptor"]["dim"] if meta.get("adaptor") else None, meta["dim"]

        def encode() -> Any:
            base = spec.encode(np.asarray(space.vectors), adaptor, adaptor_dim)
            if base.shape[1] != dim:
                raise SpaceFormatError(f"{path}: the adaptor outputs {base.shape[1]}-d vectors, index.json says {dim}; "
                                       "the index is corrupt")
            return base

        return cls(space, spec, adaptor, adaptor_dim, built=spec.load(path, space.count, dim, encode))

"""`Index`: a space made searchable by one of the specs in `repspace.index.spec`, on faiss.

On disk an index is a space directory (manifest.json, vectors.npy, items.parquet; the
float vectors serve exact rescoring and funnel stages) plus `index.json` (spec, model) and,
for graph and quantised indexes, `faiss.index` in faiss's own binary format (never pickle).
Search is by cosine: corpus and query vectors are L2-normalised (per prefix for funnels).

An index may be built through an adaptor (a saved compressor: PCA, Matryoshka adaptor, CSR): it keeps
the adaptor in `adaptor/` and applies it to the corpus at build and to every query at search, so
queries are always vectors of the index's model (or its text). CSR codes (spec `sparse`) are stored
sparse (`codes_*.npy`: values, 16-bit latent ids, row pointers) and searched with sparse products.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from repspace._io import atomic_dir, read_meta
from repspace.errors import DimensionMismatchError, InvalidInputError, SpaceFormatError
from repspace.ops.search import _faiss, normalize_rows, topk, topk_rows
from repspace.index.spec import IndexSpec, parse_spec
from repspace.spaces import Space
from repspace.spaces.space import check_finite

FORMAT = "repspace.index"


def _prefix(x: np.ndarray, d: int) -> np.ndarray:
    return normalize_rows(np.ascontiguousarray(x[:, :d]))


def _rescore(q: np.ndarray, base: np.ndarray, cand: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank candidate rows (nq, K) by exact inner product of q (nq, d) with base rows; keep the top `keep`.

    The gather and dot products run in faiss's C++ (`fvec_inner_products_by_idx`, no copy of `base`),
    4-5x faster than a numpy fancy-index gather; candidates < 0 (none) score -inf."""
    faiss = _faiss()
    q = np.ascontiguousarray(q, dtype=np.float32)
    base = np.ascontiguousarray(base, dtype=np.float32)
    safe = np.ascontiguousarray(np.where(cand >= 0, cand, 0), dtype=np.int64)
    scores = np.empty(cand.shape, np.float32)
    faiss.fvec_inner_products_by_idx(faiss.swig_ptr(scores), faiss.swig_ptr(q), faiss.swig_ptr(base),
                                     faiss.swig_ptr(safe), q.shape[1], len(q), cand.shape[1])
    scores[cand < 0] = -np.inf
    top, pos = topk_rows(scores, keep)
    return top, np.take_along_axis(cand, pos, 1).astype(np.int64)


def _normalize_sparse(m: Any) -> Any:
    """Rows of a scipy CSR matrix scaled to unit L2 norm (empty rows stay empty)."""
    import scipy.sparse as sp

    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    return (sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ m).tocsr().astype(np.float32)


class Index:
    """A searchable space. Build with `Index.build(space, "HNSW32")`, then `search(queries, k)`."""

    def __init__(self, space: Space, spec: IndexSpec, faiss_index: Any = None, rotation: np.ndarray | None = None,
                 adaptor: Any = None, adaptor_dim: int | None = None, codes: Any = None) -> None:
        self.space = space
        self.spec = spec
        self.adaptor, self.adaptor_dim = adaptor, adaptor_dim
        sparse_adaptor = adaptor is not None and hasattr(adaptor, "encode_sparse")
        if spec.kind == "sparse" and not sparse_adaptor:
            raise InvalidInputError("spec 'sparse' searches CSR codes: build it with --adaptor pointing at a "
                                    "`repspace compress fit --method csr` adaptor")
        if spec.kind != "sparse" and sparse_adaptor:
            raise InvalidInputError("a csr adaptor makes sparse codes: build its index with --spec sparse")
        self._sparse = None
        if spec.kind == "sparse":
            self._sparse = codes if codes is not None else _normalize_sparse(adaptor.encode_sparse(np.asarray(space.vectors)))
            self._vectors = None
        else:
            base = np.asarray(space.vectors) if adaptor is None else adaptor.transform(np.asarray(space.vectors), adaptor_dim)
            self._vectors = normalize_rows(base)
        # sign codes need the energy spread over all dimensions (FIELD-NOTES: on PCA-ordered vectors
        # recall collapses); a random rotation, which keeps inner products, spreads it
        self._rotation = rotation
        if spec.kind == "binary" and rotation is None:
            d = self.dim
            q, r = np.linalg.qr(np.random.default_rng(0).normal(size=(d, d)))
            self._rotation = (q * np.sign(np.diag(r))).astype(np.float32)
        self._faiss = faiss_index
        self._prefix_cache: dict[int, np.ndarray] = {}
        if faiss_index is None:
            self._faiss = self._make_faiss()

    # ------------------------------------------------------------------ build
    @classmethod
    def build(cls, space: Space, spec: str | IndexSpec, adaptor: Any = None, adaptor_dim: int | None = None) -> "Index":
        """Index `space` (n, d) with `spec`, optionally through a fitted compressor (at `adaptor_dim`)."""
        spec = parse_spec(spec) if isinstance(spec, str) else spec
        if adaptor is not None:
            adaptor.check_source(space)
            adaptor_dim = adaptor_dim or max(adaptor.dims_)
        dim = adaptor_dim or space.dim
        if spec.kind == "funnel" and spec.stages[-1] > dim:
            raise DimensionMismatchError(f"funnel stage {spec.stages[-1]} exceeds the indexed dimension {dim}")
        return cls(space, spec, adaptor=adaptor, adaptor_dim=adaptor_dim)

    def _make_faiss(self) -> Any:
        faiss = _faiss()
        x, d = self._vectors, self.dim
        kind = self.spec.kind
        if kind in ("flat", "sparse"):
            return None  # exact search runs through repspace.ops.search.topk (faiss.knn)
        if kind == "hnsw":
            idx = faiss.IndexHNSWFlat(d, self.spec.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = 100
            idx.add(x)
            return idx
        if kind == "int8":
            idx = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
            idx.train(x)
            idx.add(x)
            return idx
        if kind == "binary":
            idx = faiss.IndexBinaryFlat(((d + 7) // 8) * 8)
            idx.add(self._codes(x @ self._rotation))
            return idx
        return None  # funnel: prefix arrays, searched exactly

    @staticmethod
    def _codes(x: np.ndarray) -> np.ndarray:
        bits = x > 0
        pad = (-bits.shape[1]) % 8
        if pad:
            bits = np.hstack([bits, np.zeros((len(bits), pad), bool)])
        return np.packbits(bits, axis=1)

    # ----------------------------------------------------------------- search
    @property
    def dim(self) -> int:
        """Dimension searched (the adaptor's output, or the space's)."""
        return int(self._sparse.shape[1] if self._sparse is not None else self._vectors.shape[1])

    @property
    def input_dim(self) -> int:
        """Dimension of query vectors: the index's model's."""
        return self.space.dim

    def memory_bytes(self) -> dict[str, int]:
        """Bytes of the first-stage structure searched, and of the float vectors kept for rescoring."""
        n, d = self.space.count, self.dim
        if self.spec.kind == "sparse":
            nnz = int(self._sparse.nnz)
            return {"first_stage": nnz * (4 + _index_bytes(d)) + (n + 1) * 8, "float_vectors": 0}
        first = {"flat": n * d * 4, "hnsw": n * d * 4 + n * self.spec.hnsw_m * 2 * 4, "int8": n * d,
                 "binary": n * ((d + 7) // 8), "funnel": n * (self.spec.stages[0] if self.spec.stages else d) * 4}
        return {"first_stage": int(first[self.spec.kind]), "float_vectors": n * d * 4}

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
        kind = self.spec.kind
        if kind == "sparse":
            return self._search_sparse(_normalize_sparse(self.adaptor.encode_sparse(q)), k)
        if self.adaptor is not None:
            q = self.adaptor.transform(q, self.adaptor_dim)
        q = normalize_rows(q)
        if kind == "flat":
            return topk(q, self._vectors, k)
        if kind == "hnsw":
            self._faiss.hnsw.efSearch = max(ef_search, k)
            s, i = self._faiss.search(q, k)
            return s, i.astype(np.int64)
        if kind == "int8":
            r = max(self.spec.rescore, k)
            s, i = self._faiss.search(q, r)
            i = i.astype(np.int64)
            if self.spec.rescore:
                return _rescore(q, self._vectors, i, k)
            return s[:, :k], i[:, :k]
        if kind == "binary":
            r = min(max(self.spec.rescore, k), self.space.count)
            _, i = self._faiss.search(self._codes(q @ self._rotation), r)
            return _rescore(q, self._vectors, i.astype(np.int64), k)
        # funnel: exact shortlist on the first prefix, then rerank on longer prefixes
        stages = self.spec.stages
        keep = min(max(self.spec.shortlist, k), self.space.count)
        _, cand = topk(_prefix(q, stages[0]), self._prefix(stages[0]), keep)
        for j, d in enumerate(stages[1:], start=1):
            keep = k if j == len(stages) - 1 else max(k, keep // 2)
            s, cand = _rescore(_prefix(q, d), self._prefix(d), cand, keep)
        return s, cand

    def _prefix(self, d: int) -> np.ndarray:
        if d == self.dim:
            return self._vectors
        if d not in self._prefix_cache:
            self._prefix_cache[d] = _prefix(self._vectors, d)
        return self._prefix_cache[d]

    def _search_sparse(self, qc: Any, k: int, max_cells: int = 1 << 24) -> tuple[np.ndarray, np.ndarray]:
        """Sparse query codes (nq, h) against the stored codes: exact top-k by sparse dot products."""
        n = self.space.count
        step = max(1, max_cells // max(1, n))
        out_s, out_i = np.empty((qc.shape[0], k), np.float32), np.empty((qc.shape[0], k), np.int64)
        if getattr(self, "_sparse_t", None) is None:
            self._sparse_t = self._sparse.T.tocsr()
        ct = self._sparse_t
        for s in range(0, qc.shape[0], step):
            scores = (qc[s : s + step] @ ct).toarray()
            out_s[s : s + step], out_i[s : s + step] = topk_rows(scores, k)
        return out_s, out_i

    def search_ids(self, queries: np.ndarray, k: int = 10) -> list[list[tuple[str, float]]]:
        s, i = self.search(queries, k)
        return [[(self.space.ids[c], float(v)) for c, v in zip(row_i, row_s) if c >= 0] for row_i, row_s in zip(i, s)]

    # ---------------------------------------------------------------- storage
    def save(self, path: str | Path) -> Path:
        faiss = _faiss()
        path = Path(path)
        meta = {"format": FORMAT, "format_version": 1, "spec": str(self.spec), "model": self.space.model,
                "model_version": self.space.model_version, "dim": self.dim, "input_dim": self.input_dim,
                "count": self.space.count, "has_faiss_index": self.spec.kind in ("hnsw", "int8"),
                "adaptor": None if self.adaptor is None else {"method": self.adaptor.name, "dim": self.adaptor_dim}}
        with atomic_dir(path) as tmp:
            self.space.save(tmp / "space")
            if meta["has_faiss_index"]:
                np.save(tmp / "faiss.index.npy", faiss.serialize_index(self._faiss), allow_pickle=False)
            if self._rotation is not None:
                np.save(tmp / "rotation.npy", self._rotation, allow_pickle=False)
            if self.adaptor is not None:
                self.adaptor.save(tmp / "adaptor")
            if self._sparse is not None:
                c = self._sparse
                np.save(tmp / "codes_data.npy", c.data.astype(np.float32), allow_pickle=False)
                np.save(tmp / "codes_indices.npy", c.indices.astype(np.uint16 if _index_bytes(c.shape[1]) == 2 else np.int32),
                        allow_pickle=False)
                np.save(tmp / "codes_indptr.npy", c.indptr.astype(np.int64), allow_pickle=False)
            (tmp / "index.json").write_text(json.dumps(meta, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Index":
        faiss = _faiss()
        path = Path(path)
        meta = read_meta(path, "index.json", FORMAT, "index")
        space = Space.load(path / "space")
        if space.dim != meta.get("input_dim", meta.get("dim")) or space.count != meta.get("count"):
            raise SpaceFormatError(f"{path}: index.json does not match its vectors; the index is corrupt")
        spec = parse_spec(meta["spec"])
        adaptor = codes = None
        if meta.get("adaptor"):
            from repspace.compress import Compressor

            adaptor = Compressor.load(path / "adaptor")
        dim = meta["dim"]
        if spec.kind == "sparse":
            codes = _load_codes(path, space.count, dim)
        fidx = None
        if meta.get("has_faiss_index"):
            try:
                raw = np.load(path / "faiss.index.npy", allow_pickle=False)
                fidx = faiss.deserialize_index(raw)
            except Exception as e:
                raise SpaceFormatError(f"{path}/faiss.index.npy is corrupt or missing: {e}") from None
            if fidx.ntotal != space.count or fidx.d != dim:
                raise SpaceFormatError(f"{path}: faiss index holds {fidx.ntotal} x {fidx.d}, vectors {space.count} x {dim}")
        rotation = None
        if spec.kind == "binary":
            try:
                rotation = np.load(path / "rotation.npy", allow_pickle=False)
            except Exception as e:
                raise SpaceFormatError(f"{path}/rotation.npy is corrupt or missing: {e}") from None
            if rotation.shape != (dim, dim):
                raise SpaceFormatError(f"{path}/rotation.npy has shape {rotation.shape}; the index is corrupt")
        index = cls(space, spec, fidx, rotation, adaptor=adaptor,
                    adaptor_dim=meta["adaptor"]["dim"] if meta.get("adaptor") else None, codes=codes)
        if index.dim != dim:
            raise SpaceFormatError(f"{path}: the adaptor outputs {index.dim}-d vectors, index.json says {dim}; the index is corrupt")
        return index


def _index_bytes(h: int) -> int:
    """Bytes per stored latent id: 2 while ids fit 16 bits."""
    return 2 if h <= 1 << 16 else 4


def _load_codes(path: Path, n: int, h: int) -> Any:
    import scipy.sparse as sp

    try:
        data = np.load(path / "codes_data.npy", allow_pickle=False)
        indices = np.load(path / "codes_indices.npy", allow_pickle=False).astype(np.int32)
        indptr = np.load(path / "codes_indptr.npy", allow_pickle=False)
        if len(indptr) != n + 1 or indptr[-1] != len(data) or len(indices) != len(data) or \
                (len(indices) and (indices.min() < 0 or indices.max() >= h)):
            raise ValueError("inconsistent arrays")
        return sp.csr_matrix((data, indices, indptr), shape=(n, h))
    except Exception as e:
        raise SpaceFormatError(f"{path}: the sparse codes are corrupt or missing: {e}") from None

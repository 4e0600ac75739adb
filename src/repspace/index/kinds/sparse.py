"""`sparse`: CSR codes of a sparse adaptor (`CSRCompressor`), stored sparse and searched by exact sparse dot products.

The codes are saved as `codes_data.npy` (float32 values), `codes_indices.npy` (latent ids: uint16 while they fit,
else int32) and `codes_indptr.npy` (int64 row pointers); no float vectors are kept for rescoring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from repspace.errors import InvalidInputError, SpaceFormatError
from repspace.index.kinds.base import Built, IndexSpec
from repspace.ops.search import topk_rows

MAX_CELLS = 1 << 24  # dense score cells per query block


@dataclass(frozen=True)
class Sparse(IndexSpec, name="sparse", pattern=r"(?a)sparse",  # ASCII case-folding, as str.lower() == "sparse"
             usage="sparse (with a csr adaptor)", examples="sparse (with a csr adaptor)"):
    """`sparse`: needs an adaptor with `encode_sparse` (a fitted csr compressor); queries go through it too."""

    static_only = True

    def __str__(self) -> str:
        return "sparse"

    def check_adaptor(self, adaptor: Any) -> None:
        if adaptor is None or not hasattr(adaptor, "encode_sparse"):
            raise InvalidInputError("spec 'sparse' searches CSR codes: build it through an adaptor that is a fitted "
                                    "csr compressor")

    def encode(self, x: np.ndarray, adaptor: Any, adaptor_dim: int | None) -> Any:
        return _normalize_sparse(adaptor.encode_sparse(x))

    def build(self, base: Any) -> dict[str, Any]:
        return {}  # the transposed codes, made on first search

    def search(self, state: dict[str, Any], base: Any, q: Any, k: int, ef_search: int) -> tuple[np.ndarray, np.ndarray]:
        n = base.shape[0]
        step = max(1, MAX_CELLS // max(1, n))
        out_s, out_i = np.empty((q.shape[0], k), np.float32), np.empty((q.shape[0], k), np.int64)
        if "t" not in state:
            state["t"] = base.T.tocsr()
        for s in range(0, q.shape[0], step):
            scores = (q[s : s + step] @ state["t"]).toarray()
            out_s[s : s + step], out_i[s : s + step] = topk_rows(scores, k)
        return out_s, out_i

    def memory_bytes(self, base: Any) -> dict[str, int]:
        n, h = base.shape
        return {"first_stage": int(base.nnz) * (4 + _index_bytes(h)) + (n + 1) * 8, "float_vectors": 0}

    def save(self, state: Any, base: Any, path: Path) -> None:
        np.save(path / "codes_data.npy", base.data.astype(np.float32), allow_pickle=False)
        np.save(path / "codes_indices.npy", base.indices.astype(np.uint16 if _index_bytes(base.shape[1]) == 2 else np.int32),
                allow_pickle=False)
        np.save(path / "codes_indptr.npy", base.indptr.astype(np.int64), allow_pickle=False)

    def load(self, path: Path, n: int, dim: int, encode: Callable[[], Any]) -> Built:
        import scipy.sparse as sp

        try:
            data = np.load(path / "codes_data.npy", allow_pickle=False)
            indices = np.load(path / "codes_indices.npy", allow_pickle=False).astype(np.int32)
            indptr = np.load(path / "codes_indptr.npy", allow_pickle=False)
            if len(indptr) != n + 1 or indptr[-1] != len(data) or len(indices) != len(data) or \
                    (len(indices) and (indices.min() < 0 or indices.max() >= dim)):
                raise ValueError("inconsistent arrays")
            codes = sp.csr_matrix((data, indices, indptr), shape=(n, dim))
        except Exception as e:
            raise SpaceFormatError(f"{path}: the sparse codes are corrupt or missing: {e}") from None
        return codes, self.build(codes)


def _index_bytes(h: int) -> int:
    """Bytes per stored latent id: 2 while ids fit 16 bits."""
    return 2 if h <= 1 << 16 else 4


def _normalize_sparse(m: Any) -> Any:
    """Rows of a scipy CSR matrix scaled to unit L2 norm (empty rows stay empty)."""
    import scipy.sparse as sp

    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    return (sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ m).tocsr().astype(np.float32)

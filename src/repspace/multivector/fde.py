"""MUVERA fixed-dimensional encodings (FDE): a set of token vectors -> one vector whose inner product with another
FDE approximates their Chamfer (MaxSim) similarity.

Dhulipala, Hadian, Jayaram, Lee, Mirrokni: "MUVERA: Multi-Vector Retrieval via Fixed Dimensional Encodings",
NeurIPS 2024 (arXiv:2405.19504). Per repetition r (of `num_repetitions`): `num_simhash_projections` (k) Gaussian
hyperplanes cut the token space into 2**k buckets; each token (optionally projected to `projection_dimension` by a
+-1 AMS sketch) is added to its bucket's block. Queries sum their tokens per bucket; documents average theirs and,
with `fill_empty_partitions`, fill an empty bucket with the token nearest to it in Hamming distance of the SimHash
bits. Blocks are laid out repetition-major, bucket-major: dimension = repetitions * 2**k * projection dimension, or
`final_projection_dimension` after an optional Count-Sketch of the whole vector.

Semantics and random streams follow Google's reference (graph-mining, sketching/point_cloud) exactly, including its
bucket numbering (a token's SimHash bits read as a Gray code), its seeds (repetition r uses seed + r for both the
SimHash and the AMS matrix; the Count-Sketch uses seed) and its unscaled +-1 AMS entries; see `rng.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from repspace.errors import InvalidInputError
from repspace.multivector.rng import WordStream, index_sign_pairs, normal_floats
from repspace.multivector.tokens import TokenSet

MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class FDEConfig:
    """The parameters of one FDE; queries and documents must be encoded with the same config.

    dim: token dimension d. num_repetitions: independent partitions (R). num_simhash_projections: k, 2**k buckets
    (0..30). seed: of every random matrix. projection_dimension: AMS inner projection d_proj (None = identity).
    fill_empty_partitions: documents fill empty buckets with their nearest token. final_projection_dimension: a
    Count-Sketch of the whole FDE to this many dimensions (None = none).
    """

    dim: int
    num_repetitions: int = 20
    num_simhash_projections: int = 5
    seed: int = 1
    projection_dimension: int | None = None
    fill_empty_partitions: bool = True
    final_projection_dimension: int | None = None

    def __post_init__(self) -> None:
        def positive(name: str, value: Any, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}", param=name)

        positive("dim", self.dim)
        positive("num_repetitions", self.num_repetitions)
        positive("projection_dimension", self.projection_dimension, allow_none=True)
        positive("final_projection_dimension", self.final_projection_dimension, allow_none=True)
        k = self.num_simhash_projections
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= 30:
            raise InvalidInputError(f"num_simhash_projections must be an integer in 0..30, got {k!r}",
                                    param="num_simhash_projections")
        if not isinstance(self.seed, (int, np.integer)) or not 0 <= self.seed <= MAX_SEED - self.num_repetitions:
            raise InvalidInputError(f"seed must be an integer in 0..{MAX_SEED - self.num_repetitions}, got {self.seed!r}",
                                    param="seed")

    @property
    def block_dim(self) -> int:
        return self.projection_dimension or self.dim

    @property
    def num_partitions(self) -> int:
        return 1 << self.num_simhash_projections

    @property
    def raw_dim(self) -> int:
        """Dimension before the final projection."""
        return self.num_repetitions * self.num_partitions * self.block_dim

    @property
    def output_dim(self) -> int:
        return self.final_projection_dimension or self.raw_dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FDEConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


# ----------------------------------------------------------------------------------------------- random matrices
def simhash_matrix(seed: int, dim: int, k: int) -> np.ndarray:
    """(dim, k) Gaussian hyperplanes: the reference fills a column-major matrix from one normal stream."""
    return normal_floats(WordStream(seed), dim * k).reshape(k, dim).T.copy()


def ams_matrix(seed: int, dim: int, proj: int) -> np.ndarray:
    """(dim, proj) AMS sketch: row i has one +-1 at a uniform column."""
    idx, sign = index_sign_pairs(WordStream(seed), dim, proj)
    out = np.zeros((dim, proj), dtype=np.float32)
    out[np.arange(dim), idx] = sign
    return out


def count_sketch(seed: int, length: int, final_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each of `length` coordinates lands in the final projection, and its sign."""
    return index_sign_pairs(WordStream(seed), length, final_dim)


# ----------------------------------------------------------------------------------------------- the encoding
def _partition_codes(bits: np.ndarray) -> np.ndarray:
    """(n, k) SimHash bits -> bucket number, appended as the reference's Gray code: p = (p << 1) + (b ^ (p & 1))."""
    code = np.zeros(bits.shape[0], dtype=np.int64)
    for j in range(bits.shape[1]):
        code = (code << 1) + (bits[:, j].astype(np.int64) ^ (code & 1))
    return code


def _bucket_bits(k: int) -> np.ndarray:
    """(2**k, k): the SimHash bits each bucket stands for (bucket p ^ (p >> 1), most significant bit first)."""
    p = np.arange(1 << k, dtype=np.int64)
    b = p ^ (p >> 1)
    return ((b[:, None] >> np.arange(k - 1, -1, -1)[None, :]) & 1).astype(np.float32)


class _Matrices:
    """The random matrices of one config, drawn once."""

    def __init__(self, cfg: FDEConfig) -> None:
        self.simhash = [simhash_matrix(cfg.seed + r, cfg.dim, cfg.num_simhash_projections)
                        if cfg.num_simhash_projections else None for r in range(cfg.num_repetitions)]
        self.ams = [ams_matrix(cfg.seed + r, cfg.dim, cfg.projection_dimension) if cfg.projection_dimension else None
                    for r in range(cfg.num_repetitions)]
        self.sketch = None
        if cfg.final_projection_dimension:
            from scipy import sparse

            idx, sign = count_sketch(cfg.seed, cfg.raw_dim, cfg.final_projection_dimension)
            self.sketch = sparse.csr_matrix((sign, (idx, np.arange(cfg.raw_dim))),
                                            shape=(cfg.final_projection_dimension, cfg.raw_dim))
        self.bucket_bits = _bucket_bits(cfg.num_simhash_projections) if cfg.num_simhash_projections else None


def _encode_block(cfg: FDEConfig, mats: _Matrices, flat: np.ndarray, offsets: np.ndarray, document: bool) -> np.ndarray:
    n = len(offsets) - 1
    P, B = cfg.num_partitions, cfg.block_dim
    lengths = np.diff(offsets)
    owner = np.repeat(np.arange(n), lengths)
    out = np.zeros((cfg.num_repetitions, n, P, B), dtype=np.float32)  # repetition-major while filling
    for r in range(cfg.num_repetitions):
        projected = flat if mats.ams[r] is None else flat @ mats.ams[r]
        if mats.simhash[r] is not None:
            sketch = flat @ mats.simhash[r]
            bits = sketch > 0
            part = _partition_codes(bits)
        else:
            part = np.zeros(len(flat), dtype=np.int64)
        key = owner * P + part
        order = np.argsort(key, kind="stable")
        keys_sorted = key[order]
        starts = np.flatnonzero(np.r_[True, keys_sorted[1:] != keys_sorted[:-1]])
        used = keys_sorted[starts]
        sums = np.add.reduceat(projected[order], starts, axis=0)
        block = out[r].reshape(n * P, B)  # a view: out[r] is contiguous
        if document:
            counts = np.diff(np.r_[starts, len(keys_sorted)]).astype(np.float32)
            block[used] = sums / counts[:, None]
            if cfg.fill_empty_partitions and mats.bucket_bits is not None:
                _fill_empty(block, used, bits, mats.bucket_bits, projected, offsets, n, P)
        else:
            block[used] = sums
    out = np.ascontiguousarray(out.transpose(1, 0, 2, 3)).reshape(n, cfg.raw_dim)
    if mats.sketch is not None:
        out = np.asarray(mats.sketch @ out.T).T.astype(np.float32)  # (L, F) sparse +-1: out @ S
    return out


def _fill_empty(block: np.ndarray, used: np.ndarray, bits: np.ndarray, bucket_bits: np.ndarray,
                projected: np.ndarray, offsets: np.ndarray, n: int, P: int) -> None:
    """Empty bucket (item, p) <- the item's first token with the fewest SimHash bits differing from bucket p."""
    empty = np.ones(n * P, dtype=bool)
    empty[used] = False
    if not empty.any():
        return
    b = bits.astype(np.float32)
    dist = b @ (1 - bucket_bits).T + (1 - b) @ bucket_bits.T  # (tokens, P) Hamming distances
    starts = offsets[:-1]
    seg_min = np.minimum.reduceat(dist, starts, axis=0)  # (n, P)
    lengths = np.diff(offsets)
    is_min = dist == np.repeat(seg_min, lengths, axis=0)
    token = np.where(is_min, np.arange(len(dist))[:, None], len(dist))
    first = np.minimum.reduceat(token, starts, axis=0).reshape(n * P)
    rows = np.flatnonzero(empty)
    block[rows] = projected[first[rows]]


def _encode(items: Sequence[np.ndarray] | TokenSet, cfg: FDEConfig, document: bool, what: str, chunk_tokens: int) -> np.ndarray:
    if not isinstance(cfg, FDEConfig):
        raise InvalidInputError(f"config must be an FDEConfig, got {type(cfg).__name__}", param="config")
    tokens = TokenSet.from_arrays(items, cfg.dim, what)
    flat, offsets = tokens.flat, tokens.offsets
    mats = _Matrices(cfg)
    n = len(offsets) - 1
    out = np.empty((n, cfg.output_dim), dtype=np.float32)
    max_items = max(1, (1 << 25) // cfg.raw_dim)  # at most ~128 MB of raw FDE per block
    start = 0
    while start < n:  # bounded memory: whole items, about chunk_tokens tokens per block
        stop = int(np.searchsorted(offsets, offsets[start] + chunk_tokens, side="right")) - 1
        stop = min(max(stop, start + 1), n, start + max_items)
        sub = offsets[start:stop + 1] - offsets[start]
        out[start:stop] = _encode_block(cfg, mats, flat[offsets[start]:offsets[stop]], sub, document)
        start = stop
    return out


def encode_queries(queries: Sequence[np.ndarray] | TokenSet, config: FDEConfig, chunk_tokens: int = 16384) -> np.ndarray:
    """Query FDEs: queries is a list of (n_i, dim) token arrays -> (len, output_dim) float32 (bucket sums)."""
    if config.fill_empty_partitions:
        config = FDEConfig(**{**config.to_dict(), "fill_empty_partitions": False})  # a query side never fills
    return _encode(queries, config, document=False, what="queries", chunk_tokens=chunk_tokens)


def encode_documents(documents: Sequence[np.ndarray] | TokenSet, config: FDEConfig, chunk_tokens: int = 16384) -> np.ndarray:
    """Document FDEs: documents is a list of (n_i, dim) token arrays -> (len, output_dim) float32 (bucket means,
    empty buckets filled when `config.fill_empty_partitions`)."""
    return _encode(documents, config, document=True, what="documents", chunk_tokens=chunk_tokens)

"""Compact embeddings: PCA, post-hoc Matryoshka adaptors, CSR sparse codes, and the training losses they use."""

from repspace.compress.base import Compressor, CompressorReducer
from repspace.compress.losses import InfoNCELoss, MatryoshkaLoss, SimilarityPreservationLoss, SupConLoss
from repspace.compress.matryoshka import MatryoshkaAdaptor
from repspace.compress.pca import PCACompressor
from repspace.compress.csr import CSRCompressor
from repspace.evaluation.sweep import REDUCER_LOADERS

from repspace.compress.base import _load_reducer  # noqa: E402

if _load_reducer not in REDUCER_LOADERS:
    REDUCER_LOADERS.append(_load_reducer)

__all__ = ["CSRCompressor", "Compressor", "CompressorReducer", "InfoNCELoss", "MatryoshkaAdaptor", "MatryoshkaLoss", "PCACompressor",
           "SimilarityPreservationLoss", "SupConLoss"]

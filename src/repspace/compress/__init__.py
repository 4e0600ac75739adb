"""Compact embeddings: PCA and post-hoc Matryoshka adaptors, and the training losses they use."""

from repspace.compress.base import Compressor, CompressorReducer
from repspace.compress.losses import InfoNCELoss, MatryoshkaLoss, SimilarityPreservationLoss, SupConLoss
from repspace.compress.matryoshka import MatryoshkaAdaptor
from repspace.compress.pca import PCACompressor
from repspace.evaluation.sweep import REDUCER_LOADERS

from repspace.compress.base import _load_reducer  # noqa: E402

if _load_reducer not in REDUCER_LOADERS:
    REDUCER_LOADERS.append(_load_reducer)

__all__ = ["Compressor", "CompressorReducer", "InfoNCELoss", "MatryoshkaAdaptor", "MatryoshkaLoss", "PCACompressor",
           "SimilarityPreservationLoss", "SupConLoss"]

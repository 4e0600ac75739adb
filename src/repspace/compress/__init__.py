"""Compact embeddings: PCA, post-hoc Matryoshka adaptors, CSR sparse codes, and the training losses they use.

Importing this package does not import torch: the training losses (torch modules) load on first use
(`repspace.compress.InfoNCELoss` or `repspace.compress.losses`). A new compressor: one module here with a
`Compressor` subclass that sets `name` (it registers itself), plus its import line in `registered.py`; `fit_compressor`,
the CLI's `--method` choices and the conformance test pick it up.
"""

from typing import Any

from repspace.compress.api import fit_compressor, methods
from repspace.compress.base import Compressor, CompressorReducer
from repspace.compress.registered import CSRCompressor, MatryoshkaAdaptor, PCACompressor

METHODS = tuple(Compressor.registry)  # pca, matryoshka, csr

_LOSSES = ("InfoNCELoss", "MatryoshkaLoss", "SimilarityPreservationLoss", "SupConLoss")


def __getattr__(name: str) -> Any:
    if name in _LOSSES:
        from repspace.compress import losses

        return getattr(losses, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CSRCompressor", "Compressor", "CompressorReducer", "InfoNCELoss", "METHODS", "MatryoshkaAdaptor",
           "MatryoshkaLoss", "PCACompressor", "SimilarityPreservationLoss", "SupConLoss", "fit_compressor", "methods"]

"""Every built-in compressor, registered by importing its module: one line per compressor (the import order is
the `--method` order). `compress.api.methods()` and the package import this module."""

from repspace.compress.pca import PCACompressor
from repspace.compress.matryoshka import MatryoshkaAdaptor
from repspace.compress.csr import CSRCompressor

__all__ = ["CSRCompressor", "MatryoshkaAdaptor", "PCACompressor"]

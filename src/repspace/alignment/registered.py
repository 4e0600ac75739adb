"""Every built-in translator, registered by importing its module: one line per translator (the import order is the
`--method` order). `alignment.api.methods()` and the package import this module."""

from repspace.alignment.linear import Affine, LeastSquares, LowRank, Procrustes, Ridge
from repspace.alignment.mlp import MLPTranslator
from repspace.alignment.relative import RelativeTranslator
from repspace.alignment.unsupervised import UnsupervisedTranslator

__all__ = ["Affine", "LeastSquares", "LowRank", "MLPTranslator", "Procrustes", "RelativeTranslator", "Ridge",
           "UnsupervisedTranslator"]

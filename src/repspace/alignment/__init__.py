"""Alignment and translation between embedding spaces."""

from repspace.alignment.api import METHODS, apply_translator, evaluate_translator, fit_translator, matching_scores
from repspace.alignment.base import Translator, load_translator
from repspace.alignment.linear import Affine, LeastSquares, LowRank, Procrustes, Ridge
from repspace.alignment.mlp import MLPTranslator
from repspace.alignment.relative import RelativeTranslator, relative_projection, select_anchors
from repspace.alignment.unsupervised import UnsupervisedTranslator

__all__ = ["Affine", "LeastSquares", "LowRank", "METHODS", "MLPTranslator", "Procrustes", "RelativeTranslator",
           "Ridge", "apply_translator", "Translator", "UnsupervisedTranslator", "evaluate_translator", "fit_translator",
           "load_translator", "matching_scores", "relative_projection", "select_anchors"]

"""Alignment and translation between embedding spaces.

A new translator: one module here with a `Translator` subclass that sets `name` (it registers itself),
plus its import line in `registered.py`; `fit_translator`, the CLI's `--method` choices and the conformance test pick it up.
"""

from repspace.alignment.api import apply_translator, evaluate_translator, fit_translator, matching_scores, methods
from repspace.alignment.base import Translator, load_translator
from repspace.alignment.registered import (Affine, LeastSquares, LowRank, MLPTranslator, Procrustes, RelativeTranslator,
                                          Ridge, UnsupervisedTranslator)
from repspace.alignment.relative import relative_projection, select_anchors

METHODS = tuple(Translator.registry)  # procrustes, lstsq, ridge, affine, lowrank, mlp, relative, unsupervised

__all__ = ["Affine", "LeastSquares", "LowRank", "METHODS", "MLPTranslator", "Procrustes", "RelativeTranslator",
           "Ridge", "apply_translator", "Translator", "UnsupervisedTranslator", "evaluate_translator", "fit_translator",
           "load_translator", "matching_scores", "methods", "relative_projection", "select_anchors"]

"""The LIMIT capacity test (Weller et al., 2025): how many documents n can free embeddings of dimension d serve
so that every k-subset is some query's exact top-k (`critical_n`), and recall@k of a model and of BM25 on
LIMIT-style data (`evaluate_limit`); see docs/limit.md."""

from repspace.limit.bm25 import BM25
from repspace.limit.capacity import Capacity, critical_n
from repspace.limit.data import LimitData, limit_data
from repspace.limit.evaluate import evaluate_limit
from repspace.limit.free import FreeFit, fit_free_embeddings

__all__ = ["BM25", "Capacity", "FreeFit", "LimitData", "critical_n", "evaluate_limit", "fit_free_embeddings",
           "limit_data"]

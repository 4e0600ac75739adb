"""The LIMIT capacity test (Weller et al., 2025): how many documents n can free embeddings of dimension d serve
so that every k-subset is some query's exact top-k (`critical_n`); see docs/limit.md."""

from repspace.limit.capacity import Capacity, critical_n
from repspace.limit.free import FreeFit, fit_free_embeddings

__all__ = ["Capacity", "FreeFit", "critical_n", "fit_free_embeddings"]

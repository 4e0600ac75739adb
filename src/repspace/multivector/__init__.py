"""Multi-vector items (token embeddings): MUVERA fixed-dimensional encodings, exact MaxSim and re-ranking."""

from repspace.multivector.fde import FDEConfig, encode_documents, encode_queries
from repspace.multivector.maxsim import maxsim, maxsim_scores, rerank, search
from repspace.multivector.tokens import TokenSet

__all__ = ["FDEConfig", "TokenSet", "encode_documents", "encode_queries", "maxsim", "maxsim_scores", "rerank", "search"]

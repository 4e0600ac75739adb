"""Exact top-k search: moved to `repspace.ops.search` (the bottom layer); kept here for old imports."""

from repspace.ops.search import LARGE_K, _faiss, _numpy_knn, normalize_rows, topk

__all__ = ["LARGE_K", "_faiss", "_numpy_knn", "normalize_rows", "topk"]

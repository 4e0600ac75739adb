"""Measurements on embedding spaces: retrieval, probes, clustering, similarity, compatibility, sweeps."""

from repspace.evaluation.compatibility import compatibility
from repspace.evaluation.probes import cluster, few_shot, knn_probe, linear_probe
from repspace.evaluation.retrieval import label_retrieval, query_retrieval, read_qrels
from repspace.evaluation.similarity import compare, linear_cka
from repspace.evaluation.sweep import PCAReducer, TruncateReducer, get_reducer, sweep
from repspace.evaluation.tasks import TASKS, evaluate

__all__ = ["TASKS", "PCAReducer", "TruncateReducer", "cluster", "compare", "compatibility", "evaluate",
           "few_shot", "get_reducer", "knn_probe", "label_retrieval", "linear_cka", "linear_probe",
           "query_retrieval", "read_qrels", "sweep"]

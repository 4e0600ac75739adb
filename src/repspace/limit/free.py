"""One free-embedding fit: can n documents in d dimensions serve every k-subset as some query's exact top-k?

The "free embedding" experiment of Weller et al. (2025), "On the Theoretical Limitations of Embedding-Based
Retrieval": query and document vectors are parameters optimised directly (no encoder, the best case any model
could reach). There is one query per k-subset of the n documents (C(n, k) queries); query i's relevant set is
its subset. Vectors are unit-normalised, scores are dot products over a temperature, and the loss is the
softmax (InfoNCE) loss over all n documents, each relevant document a positive against all non-relevant ones:

    loss_i = mean_{r in R_i} -log( exp(s_ir / t) / (exp(s_ir / t) + sum_{j not in R_i} exp(s_ij / t)) )

(summing the positives inside one softmax instead lets a query settle on one relevant document and ignore the
other, which never reaches an exact top-k.)

Full-batch Adam; every `check_every` steps the fit is scored: a query is solved when all of its k relevant
documents score strictly above every other document. The fit stops at 100 %, when the accuracy has not improved
for `patience` steps, or after `steps` steps.

protocol="paper" is the optimiser of the authors' released code instead (google-deepmind/limit,
`free_embedding_experiment.py`): the loss is the log-softmax over all n documents averaged over the positives (the other relevant
document sits in each positive's denominator), the vectors themselves are the parameters and are re-normalised
after every Adam step (projected, not normalised in the forward pass), lr 0.01, float32, up to 100,000 steps, scored
every 50, and the fit stops when the loss has not fallen by 1e-5 for `patience` (1,000) steps. Our default finds
larger n than the paper's curve (a stronger optimiser only raises a free-embedding answer); this one reproduces the
paper's own optimiser, so a difference from its curve is not a difference of protocol. What still differs: the
accuracy is read before a step (theirs after it: steps 1, 51, … against 0, 50, …), a query counts as solved only
when its relevant documents score strictly above the rest (theirs: an argsort's top k, ties by position), and the
seeds and the search over n are ours (`capacity.py`).

    r = fit_free_embeddings(n=5, k=2, dim=3, seed=0)
    r.solved, r.accuracy, r.steps
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

from repspace.errors import InvalidInputError
from repspace.ops.torchstate import seeded

DEFAULTS = {"steps": 4000, "lr": 0.1, "temperature": 0.1, "patience": 1000, "check_every": 25, "precision": "float64",
            "threads": 1}
PAPER = {"steps": 100_000, "lr": 0.01, "temperature": 0.1, "patience": 1000, "check_every": 50, "precision": "float32",
         "threads": 1, "min_delta": 1e-5}  # the released code's DEFAULT_EXPERIMENT_PARAMS
PROTOCOLS = {"repspace": DEFAULTS, "paper": PAPER}
PRECISIONS = ("float32", "float64")


@dataclass(frozen=True)
class FreeFit:
    """The outcome of one fit: `solved` when every query's top-k was exactly its relevant set."""

    n: int
    k: int
    dim: int
    queries: int
    solved: bool
    accuracy: float
    steps: int
    seed: int
    #: the fitted unit vectors (numpy, queries in `relevance(n, k)`'s order), kept only with `vectors=True`: a solved
    #: fit is then a configuration anyone can check, a proof that the capacity at (dim, k) is at least n
    query_vectors: Any = field(default=None, repr=False, compare=False)
    doc_vectors: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("query_vectors", "doc_vectors")}


def _check_int(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInputError(f"{name} must be an integer >= {low}; got {value!r}", param=name)
    return int(value)


def _check_positive(value: object, name: str) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        v = float("nan")
    if not math.isfinite(v) or v <= 0:
        raise InvalidInputError(f"{name} must be a positive number; got {value!r}", param=name)
    return v


def check_shape(dim: object, k: object) -> tuple[int, int]:
    """(dim, k) as ints, or InvalidInputError naming the parameter."""
    return _check_int(dim, "dim", 1), _check_int(k, "k", 1)


def relevance(n: int, k: int):
    """The (C(n, k), n) boolean qrel matrix: one row per k-subset of range(n), in lexicographic order."""
    import torch

    subsets = list(combinations(range(n), k))
    rel = torch.zeros(len(subsets), n, dtype=torch.bool)
    rel[torch.arange(len(subsets)).repeat_interleave(k), torch.tensor(subsets).reshape(-1)] = True
    return rel


def solved_queries(scores, rel):
    """Per query: every relevant document scores strictly above every non-relevant one."""
    import torch

    inf = torch.tensor(float("inf"), dtype=scores.dtype)
    low_rel = torch.where(rel, scores, inf).amin(dim=1)
    high_other = torch.where(rel, -inf, scores).amax(dim=1)
    return low_rel > high_other


def free_loss(logits, rel, protocol: str = "repspace"):
    """The fit's loss over (queries, documents) logits and the boolean qrels: "repspace", each positive against the
    non-relevant documents only (softplus(logsumexp(negatives) - positive)); "paper", each positive's log-softmax
    over all n documents; both averaged over the positives."""
    import torch

    if protocol == "paper":
        return -torch.log_softmax(logits, dim=1)[rel].mean()
    neg_inf = torch.tensor(float("-inf"), dtype=logits.dtype)
    neg = torch.logsumexp(torch.where(rel, neg_inf, logits), dim=1, keepdim=True)
    return torch.nn.functional.softplus(neg - logits)[rel].mean()


def protocol_defaults(protocol: str) -> dict:
    """The fit settings a protocol ("repspace" or "paper") uses where the caller gives none."""
    if not isinstance(protocol, str) or protocol not in PROTOCOLS:
        raise InvalidInputError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}", param="protocol")
    return PROTOCOLS[protocol]


def fit_free_embeddings(n: int, k: int, dim: int, *, steps: int | None = None, lr: float | None = None,
                        temperature: float | None = None, patience: int | None = None, check_every: int | None = None,
                        seed: int = 0, precision: str | None = None, threads: int | None = None,
                        protocol: str = "repspace", vectors: bool = False) -> FreeFit:
    """Optimise C(n, k) query and n document vectors of dimension `dim` so each query's top-k is its subset.
    Settings left as None take the protocol's (`DEFAULTS` for "repspace", `PAPER` for "paper"; see the module
    docstring). precision "float32" with 2 threads is ~2.5x faster per step at d = 16, n = 70 (measured) (the solved
    test, strict inequalities of the scores, is then judged in float32); float64 on 1 thread is the reference.
    `vectors=True` keeps the final unit vectors on the result (`query_vectors`, `doc_vectors`)."""
    preset = protocol_defaults(protocol)
    dim, k = check_shape(dim, k)
    n = _check_int(n, "n", k)
    steps = _check_int(preset["steps"] if steps is None else steps, "steps", 1)
    patience = _check_int(preset["patience"] if patience is None else patience, "patience", 1)
    check_every = _check_int(preset["check_every"] if check_every is None else check_every, "check_every", 1)
    lr = _check_positive(preset["lr"] if lr is None else lr, "lr")
    temperature = _check_positive(preset["temperature"] if temperature is None else temperature, "temperature")
    threads = _check_int(preset["threads"] if threads is None else threads, "threads", 1)
    precision = preset["precision"] if precision is None else precision
    if precision not in PRECISIONS:
        raise InvalidInputError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}", param="precision")
    import torch

    paper = protocol == "paper"
    dtype = getattr(torch, precision)
    rel = relevance(n, k)
    m = rel.shape[0]
    unit = torch.nn.functional.normalize
    with seeded(seed=seed, threads=threads):
        q = torch.randn(m, dim, dtype=torch.float64).to(dtype)  # the same start in either precision
        d = torch.randn(n, dim, dtype=torch.float64).to(dtype)
        if paper:  # the parameters are unit vectors from the start
            q, d = unit(q, dim=1), unit(d, dim=1)
        q.requires_grad_(True)
        d.requires_grad_(True)
        opt = torch.optim.Adam([q, d], lr=lr)
        best, best_step, step, acc = -1.0, 0, 0, 0.0
        best_loss, since = math.inf, 0
        while step < steps:
            scores = q @ d.T if paper else unit(q, dim=1) @ unit(d, dim=1).T
            if step % check_every == 0:
                acc = float(solved_queries(scores.detach(), rel).double().mean())
                if acc >= 1.0:
                    break
                if acc > best:
                    best, best_step = acc, step
                elif not paper and step - best_step >= patience:
                    break
            loss = free_loss(scores / temperature, rel, protocol)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if paper:
                with torch.no_grad():
                    q.copy_(unit(q, dim=1))
                    d.copy_(unit(d, dim=1))
                value = float(loss.detach())
                if value < best_loss - PAPER["min_delta"]:
                    best_loss, since = value, 0
                else:
                    since += 1
                    if since >= patience:
                        break
        if acc < 1.0:  # the final vectors (steps run out, or the paper's loss patience between two scorings)
            with torch.no_grad():
                scores = q @ d.T if paper else unit(q, dim=1) @ unit(d, dim=1).T
                acc = float(solved_queries(scores, rel).double().mean())
    # what was scored: unit vectors (the paper's are unit after each step; ours are normalised here)
    kept = {"query_vectors": unit(q.detach(), dim=1).numpy(), "doc_vectors": unit(d.detach(), dim=1).numpy()} \
        if vectors else {}
    return FreeFit(n=n, k=k, dim=dim, queries=m, solved=acc >= 1.0, accuracy=acc, steps=step, seed=seed, **kept)

"""Fitting, applying and evaluating translators on Spaces (what the CLI calls).

Pairs are items with equal ids. Supervised methods fit on the *train* half of the shared
ids (`repspace.datasets.split_ids`), evaluation uses the *test* half, so a translator is
never scored on the pairs it was fitted on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from repspace.alignment.base import Translator
from repspace.datasets import split_ids
from repspace.errors import InvalidInputError, UnknownNameError
from repspace.ops.search import normalize_rows
from repspace.spaces import Space


def methods() -> tuple[str, ...]:
    """The registered translator names (every module of repspace.alignment loaded), in registration order."""
    import repspace.alignment.registered  # noqa: F401  (registers the built-in methods)

    return tuple(Translator.registry)


def split_shared_ids(src: Space, tgt: Space) -> tuple[list[str], list[str]]:
    """Shared ids split into (train, test) by id hash; error when none are shared."""
    tgt_ids = set(tgt.ids)
    shared = [i for i in src.ids if i in tgt_ids]
    if not shared:
        unpaired = [m for m, cls in Translator.registry.items() if not cls.uses_pairs]
        raise InvalidInputError(
            f"spaces {src.model!r} and {tgt.model!r} share no ids; supervised methods need the same items in both "
            f"(method {' or '.join(map(repr, unpaired))} fits unpaired spaces)", param="method"
        )
    return split_ids(shared)


# fit_translator's options -> the hyper-parameter each sets, for the methods whose __init__ takes it
_OPTION_PARAMS = {"anchors": "n_anchors", "anchor_method": "method", "rank": "rank", "seed": "seed"}


def make_translator(method: str, anchors: int = 300, rank: int = 64, seed: int = 0, anchor_method: str = "random",
                    **params: Any) -> Translator:
    """A fresh translator of a registered method; each option goes to the methods that take it
    (anchors, anchor_method: relative; rank: lowrank; seed: the randomised ones); `params` to all."""
    names = methods()
    if method not in names:
        raise UnknownNameError(f"unknown alignment method {method!r}; choose from {', '.join(names)}", param="method")
    cls = Translator.registry[method]
    options = {"anchors": anchors, "anchor_method": anchor_method, "rank": rank, "seed": seed}
    takes = cls._param_names()
    return cls(**{_OPTION_PARAMS[k]: v for k, v in options.items() if _OPTION_PARAMS[k] in takes}, **params)


def training_ids(src: Space, tgt: Space, pairs: int | None = None, seed: int = 0) -> list[str]:
    """The train half of the ids both spaces share, or `pairs` of them sampled with `seed`."""
    train, _ = split_shared_ids(src, tgt)
    if not train:
        raise InvalidInputError(
            "the shared items all fall in the test half of the id split, and pairs are drawn from the train half; "
            "encode the train split too (e.g. a dataset without @test)"
        )
    if pairs is not None:
        if pairs > len(train):
            raise InvalidInputError(f"pairs={pairs} is more than the {len(train)} shared training ids available",
                                    param="pairs")
        rng = np.random.default_rng(seed)
        train = [train[i] for i in np.sort(rng.choice(len(train), pairs, replace=False))]
    return train


def fit_translator(src: Space, tgt: Space, method: str = "procrustes", pairs: int | None = None,
                   anchors: int = 300, rank: int = 64, seed: int = 0, anchor_ids: list[str] | None = None,
                   anchor_method: str = "random", **params: Any) -> Translator:
    """Fit a translator src -> tgt. Supervised: on the train half of shared ids (`pairs` of them,
    sampled with `seed`). Unpaired methods (unsupervised): on all items of each space, ids ignored.
    anchor_ids: for methods with `fit_anchors` (relative), the anchors themselves."""
    translator = make_translator(method, anchors=anchors, rank=rank, seed=seed, anchor_method=anchor_method, **params)
    if not translator.uses_pairs:
        if pairs is not None:
            raise InvalidInputError(f"pairs does not apply to method {method!r} (it uses no pairs)", param="pairs")
        return translator.fit(np.asarray(src.vectors), np.asarray(tgt.vectors), source=src, target=tgt)
    if anchor_ids is not None:
        missing_s = [i for i in anchor_ids if i not in set(src.ids)]
        missing_t = [i for i in anchor_ids if i not in set(tgt.ids)]
        if missing_s or missing_t:
            which = f"source space ({missing_s[0]!r})" if missing_s else f"target space ({missing_t[0]!r})"
            raise InvalidInputError(f"{len(missing_s) + len(missing_t)} anchor id(s) are missing from the {which}",
                                    param="anchor_ids")
        if not hasattr(translator, "fit_anchors"):
            takers = [m for m, cls in Translator.registry.items() if hasattr(cls, "fit_anchors")]
            raise InvalidInputError(f"anchor ids apply to method {' or '.join(map(repr, takers))} only, not {method!r}",
                                    param="anchor_ids")
        return translator.fit_anchors(src.select(anchor_ids).vectors, tgt.select(anchor_ids).vectors,
                                      source=src, target=tgt, anchor_ids=anchor_ids)
    train = training_ids(src, tgt, pairs, seed)
    X = np.asarray(src.select(train).vectors)
    Y = np.asarray(tgt.select(train).vectors)
    return translator.fit(X, Y, source=src, target=tgt, ids=train)


def _to_shared(translator: Translator, src: Space, tgt: Space) -> tuple[np.ndarray, np.ndarray]:
    """Source and target vectors in the space where matching happens (target or relative space)."""
    return translator.transform(np.asarray(src.vectors)), translator.transform_target(np.asarray(tgt.vectors))


def matching_scores(xs: np.ndarray, yt: np.ndarray) -> dict[str, float]:
    """Row i of xs should match row i of yt among all rows of yt (cosine).

    top1, top5: fraction whose own pair ranks first / in the top 5; mean_rank (1 = best);
    mean_cos: mean cosine between a translated item and its pair."""
    a, b = normalize_rows(xs), normalize_rows(yt)
    own = np.empty(len(a), np.float32)
    ranks = np.empty(len(a), np.int64)
    for s in range(0, len(a), 2048):
        S = a[s : s + 2048] @ b.T
        rows = np.arange(len(S))
        own[s : s + len(S)] = S[rows, s + rows]  # the same arithmetic as the competitors: no rounding ties
        ranks[s : s + len(S)] = 1 + np.sum(S > own[s : s + len(S), None], axis=1)
    return {"top1": float(np.mean(ranks == 1)), "top5": float(np.mean(ranks <= 5)),
            "mean_rank": float(ranks.mean()), "mean_cos": float(own.mean()), "items": int(len(a))}


def stitching(translator: Translator, src: Space, tgt: Space, train_ids: list[str], test_ids: list[str],
              seed: int = 0) -> dict[str, float]:
    """Zero-shot stitching: a classifier trained on the target model's vectors (train ids) is applied
    to the source model's test items through the translator (or, for relative, both sides in the
    relative space); compared with the same classifier on the target model's own test items."""
    from sklearn.linear_model import LogisticRegression

    if src.labels is None or tgt.labels is None:
        return {}
    tr_t = tgt.select(train_ids)
    te_s, te_t = src.select(test_ids), tgt.select(test_ids)
    if len(np.unique(tr_t.labels)) < 2:
        return {}
    fit_x = translator.transform_target(np.asarray(tr_t.vectors))
    own_x = translator.transform_target(np.asarray(te_t.vectors))
    clf = LogisticRegression(C=10.0, max_iter=2000, random_state=seed).fit(normalize_rows(fit_x), tr_t.labels)
    stitched = clf.predict(normalize_rows(translator.transform(np.asarray(te_s.vectors))))
    own = clf.predict(normalize_rows(own_x))
    return {"stitch_accuracy": float(np.mean(stitched == te_s.labels)),
            "target_accuracy": float(np.mean(own == te_t.labels))}


def evaluate_translator(translator: Translator, src: Space, tgt: Space, all_items: bool = False) -> dict[str, Any]:
    """Matching (top1, top5, mean_rank, mean_cos) on the test half of shared ids (all shared ids
    for unsupervised translators or with all_items), plus stitching accuracy when both have labels,
    plus retrieval in the target space with translated queries (recall@10, ndcg@10)."""
    from repspace.evaluation.retrieval import query_retrieval

    translator.check_source(src)
    train, test = split_shared_ids(src, tgt)
    match = train + test if all_items or not translator.uses_pairs else test
    if len(match) < 2:
        raise InvalidInputError("fewer than 2 shared test ids to evaluate on")
    s_te, t_te = src.select(match), tgt.select(match)
    xs, yt = _to_shared(translator, s_te, t_te)
    out: dict[str, Any] = {"method": translator.name, **matching_scores(xs, yt)}
    if translator.outputs_target_space:  # retrieval in the target space with translated queries
        ret = query_retrieval(s_te, t_te, transform=translator.transform)
        out.update({"recall@10": ret["recall@10"], "ndcg@10": ret["ndcg@10"]})
    if len(train) >= 2 and len(test) >= 1:
        out.update(stitching(translator, src, tgt, train, test))
    return out


def apply_translator(translator: Translator, space: Space) -> Space:
    """Translate a space (`translator.transform_space`; a relative translator also accepts target-model
    spaces, as both sides map into the shared relative space)."""
    return translator.transform_space(space)


def __getattr__(name: str) -> Any:  # `from repspace.alignment.api import METHODS` (old import path)
    if name == "METHODS":
        return methods()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Classification transfer: linear probe, weighted k-NN, few-shot episodes.

Train/test splits are fixed by a hash of each item's id (`repspace.datasets.split_ids`), so
every model is evaluated on the same items.
"""

from __future__ import annotations

import numpy as np

from repspace.datasets.builtin import split_ids
from repspace.errors import InvalidInputError
from repspace.evaluation.retrieval import require_labels
from repspace.ops.search import normalize_rows, topk
from repspace.spaces import Space

C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


def id_split(space: Space, test_fraction: float = 0.3, salt: str = "repspace-probe-v1") -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test) from the ids' hash; errors if either side is empty."""
    test_ids = set(split_ids(space.ids, test_fraction, salt)[1])
    is_test = np.fromiter((i in test_ids for i in space.ids), dtype=bool, count=space.count)
    train, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    if train.size == 0 or test.size == 0:
        raise InvalidInputError(f"too few items ({space.count}) to split into train and test")
    return train, test


def linear_probe(space: Space, c_grid: tuple[float, ...] = C_GRID, seed: int = 0, max_iter: int = 2000) -> dict[str, float]:
    """Logistic regression on standardised features; C chosen on a validation split of train.

    Returns accuracy and macro-F1 on the test split, and the chosen C.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = require_labels(space, "probe")
    X = np.asarray(space.vectors, dtype=np.float32)
    train, test = id_split(space)
    sub = space.take(train)
    fit_rows, val_rows = id_split(sub, 0.2, salt="repspace-probe-val-v1")
    fit_rows, val_rows = train[fit_rows], train[val_rows]

    def model(c: float):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, random_state=seed))

    if len(np.unique(y[fit_rows])) < 2:
        raise InvalidInputError("the training split holds a single class; a probe needs at least 2")
    scores = {c: model(c).fit(X[fit_rows], y[fit_rows]).score(X[val_rows], y[val_rows]) for c in c_grid}
    best = max(c_grid, key=lambda c: (scores[c], -c))
    clf = model(best).fit(X[train], y[train])
    pred = clf.predict(X[test])
    return {"accuracy": float(np.mean(pred == y[test])), "macro_f1": float(f1_score(y[test], pred, average="macro")),
            "c": best, "train": int(train.size), "test": int(test.size)}


def knn_classify(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int = 20,
                 temperature: float | None = 0.07) -> np.ndarray:
    """Cosine k-NN; votes weighted by exp(sim / T) as in DINO (T=None: uniform votes).

    Returns predicted labels (n_test,). Ties go to the lexicographically smallest class.
    """
    classes, y = np.unique(train_y, return_inverse=True)
    if k > len(train_y):
        raise InvalidInputError(f"k={k} is more than the {len(train_y)} training items")
    sims, idx = topk(normalize_rows(test_x), normalize_rows(train_x), k)
    w = np.ones_like(sims, dtype=np.float64) if temperature is None else np.exp(sims.astype(np.float64) / temperature)
    votes = np.zeros((len(test_x), len(classes)))
    np.add.at(votes, (np.arange(len(test_x))[:, None].repeat(k, 1), y[idx]), w)
    return classes[np.argmax(votes, axis=1)]


def knn_probe(space: Space, k: int = 20, temperature: float | None = 0.07) -> dict[str, float]:
    y = require_labels(space, "knn")
    X = np.asarray(space.vectors, dtype=np.float32)
    train, test = id_split(space)
    pred = knn_classify(X[train], y[train], X[test], k=k, temperature=temperature)
    return {"accuracy": float(np.mean(pred == y[test])), "k": k, "train": int(train.size), "test": int(test.size)}


def _ci95(values: np.ndarray) -> float:
    return float(1.96 * values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def few_shot(space: Space, n_way: int = 5, k_shot: int = 5, n_query: int = 15, episodes: int = 200,
             seed: int = 0, logreg: bool = True) -> dict[str, float]:
    """N-way K-shot episodes: nearest-centroid (cosine) and logistic regression; mean and 95% CI."""
    from sklearn.linear_model import LogisticRegression

    y = require_labels(space, "fewshot")
    classes, counts = np.unique(y, return_counts=True)
    eligible = classes[counts >= k_shot + n_query]
    if len(eligible) < n_way:
        raise InvalidInputError(
            f"{n_way}-way {k_shot}-shot episodes with {n_query} queries need {n_way} classes with "
            f">= {k_shot + n_query} items; only {len(eligible)} have that many"
        )
    X = normalize_rows(np.asarray(space.vectors))
    rng = np.random.default_rng(seed)
    by_class = {c: np.flatnonzero(y == c) for c in eligible}
    nc_acc, lr_acc = [], []
    for _ in range(episodes):
        chosen = rng.choice(eligible, n_way, replace=False)
        sup, qry, sup_y, qry_y = [], [], [], []
        for j, c in enumerate(chosen):
            rows = rng.choice(by_class[c], k_shot + n_query, replace=False)
            sup.append(rows[:k_shot]); qry.append(rows[k_shot:])
            sup_y += [j] * k_shot; qry_y += [j] * n_query
        sup_x, qry_x = X[np.concatenate(sup)], X[np.concatenate(qry)]
        sup_y, qry_y = np.asarray(sup_y), np.asarray(qry_y)
        centroids = normalize_rows(np.stack([sup_x[sup_y == j].mean(0) for j in range(n_way)]))
        nc_acc.append(np.mean(np.argmax(qry_x @ centroids.T, 1) == qry_y))
        if logreg:
            clf = LogisticRegression(C=10.0, max_iter=1000).fit(sup_x, sup_y)
            lr_acc.append(np.mean(clf.predict(qry_x) == qry_y))
    nc, out = np.asarray(nc_acc), {}
    out.update(accuracy=float(nc.mean()), accuracy_ci95=_ci95(nc))
    if logreg:
        lr = np.asarray(lr_acc)
        out.update(logreg_accuracy=float(lr.mean()), logreg_accuracy_ci95=_ci95(lr))
    out.update(n_way=n_way, k_shot=k_shot, n_query=n_query, episodes=episodes)
    return out


def cluster(space: Space, n_clusters: int | None = None, seed: int = 0, n_init: int = 5) -> dict[str, float]:
    """k-means (scikit-learn) on L2-normalised vectors, k = number of labels by default; NMI, ARI, V-measure."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, v_measure_score

    y = require_labels(space, "cluster")
    k = n_clusters or len(np.unique(y))
    if k > space.count:
        raise InvalidInputError(f"{k} clusters need at least {k} items; the space has {space.count}")
    X = normalize_rows(np.asarray(space.vectors))
    pred = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(X)
    return {"nmi": float(normalized_mutual_info_score(y, pred)), "ari": float(adjusted_rand_score(y, pred)),
            "v_measure": float(v_measure_score(y, pred)), "clusters": k}

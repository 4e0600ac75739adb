"""Congruence: one sequence of operations replayed on a LanceDB and a PostgreSQL + pgvector collection (the real
server of the session fixture `pg_dsn`), the answers compared at every step (after qdrant-client's
tests/congruence_tests)."""

import uuid

import numpy as np
import pytest

from repspace.collections import Collection, with_collection

SCORE_TOL = 1e-5


class Twin:
    """The same collection on both backends; `do(fn)` runs fn(collection) on each, `same(fn)` also asserts equal
    answers (hits: ids equal, scores within SCORE_TOL, payloads equal) and returns the LanceDB one."""

    def __init__(self, lance: Collection, pg: Collection) -> None:
        self.lance, self.pg = lance, pg

    @property
    def both(self):
        return (self.lance, self.pg)

    def do(self, fn):
        return fn(self.lance), fn(self.pg)

    def same(self, fn, check=None):
        a, b = self.do(fn)
        (check or assert_same)(a, b)
        return a

    def close(self) -> None:
        for c in self.both:
            c.close()


def _is_hits(x) -> bool:
    return isinstance(x, list) and all(isinstance(r, list) for r in x) and any(
        isinstance(h, dict) and "score" in h for r in x for h in r)


def assert_same_hits(a, b, tol=SCORE_TOL):
    """Two search answers agree: per query the same ids in the same order and scores within tol (two items whose
    scores tie within tol may come in either order), the same payloads."""
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert len(ra) == len(rb), ([h["id"] for h in ra], [h["id"] for h in rb])
        sa, sb = np.array([h["score"] for h in ra]), np.array([h["score"] for h in rb])
        np.testing.assert_allclose(sa, sb, rtol=0, atol=tol)
        ia, ib = [h["id"] for h in ra], [h["id"] for h in rb]
        if ia != ib:  # only a swap among tied scores is allowed
            for p, (x, y) in enumerate(zip(ia, ib)):
                if x != y:
                    q = ib.index(x) if x in ib else None
                    assert q is not None and abs(sa[p] - sb[q]) <= 2 * tol, (p, ia, ib)
        pa = {h["id"]: h.get("payload") for h in ra}
        assert pa == {h["id"]: h.get("payload") for h in rb}


def assert_same(a, b):
    if _is_hits(a) or _is_hits(b):
        assert_same_hits(a, b)
    else:
        assert a == b


def recall(got, want) -> float:
    """Mean overlap of two answers' id sets, per query, over the reference's size."""
    r = [len({h["id"] for h in g} & {h["id"] for h in w}) / max(1, len(w)) for g, w in zip(got, want)]
    return float(np.mean(r))


@pytest.fixture
def twin(tmp_path, pg_dsn):
    """twin(model=..., spec=..., dim=...) -> a Twin of fresh collections (closed at the end)."""
    made = []

    def make(**kw):
        name = f"cg{uuid.uuid4().hex[:10]}"
        t = Twin(Collection.create(str(tmp_path / name), **kw), Collection.create(with_collection(pg_dsn, name), **kw))
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()

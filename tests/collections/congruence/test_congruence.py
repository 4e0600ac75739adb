"""LanceDB and PostgreSQL + pgvector answer one sequence of operations alike, step by step.

Bring-your-own vectors (an external 16-d model): upserts with texts and payloads, payload updates, replaced vectors,
deletes, get / count / export, searches with and without payload filters, a second slot. Exact spec (Flat): the
same ids and scores within 1e-5 on both, and both equal to numpy. ANN specs: recall@10 of each against exact, and
of one against the other, at least RECALL_BOUND. Then a whole model upgrade on both (glove-50 -> minilm-l3-onnx,
120 items, a fixed seed and a fixed sample): start, backfill in steps, every strategy with and without a filter at
each step, switch, finish — the same answers, fusion weights and metrics."""


import numpy as np
import pytest

from tests.collections.conftest import bbc_leads

from repspace.collections import Collection
from repspace.collections import upgrade as up

from .conftest import assert_same_hits, recall

D, N = 16, 150
RECALL_BOUND = 0.9  # ANN specs: recall@10 against exact and between the backends


def _data(n=N, seed=0):
    r = np.random.default_rng(seed)
    v = r.normal(size=(n, D)).astype(np.float32)
    ids = [f"item-{k:04d}" for k in range(n)]
    texts = [f"text of item {k}" if k % 5 else None for k in range(n)]
    pls = [{"label": f"c{k % 4}", "n": k, "even": k % 2 == 0} for k in range(n)]
    return ids, texts, v, pls


def _exact(ids, v, q, k, keep=None):
    """numpy's cosine top k (ties by id) over the items where keep holds: [[(id, score), ...], ...]."""
    vn = v / np.linalg.norm(v, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    s = qn.astype(np.float64) @ vn.T.astype(np.float64)
    rows = np.arange(len(ids)) if keep is None else np.flatnonzero(keep)
    out = []
    for j in range(len(q)):
        order = rows[np.lexsort((np.asarray([ids[r] for r in rows], dtype=object), -s[j, rows]))][:k]
        out.append([{"id": ids[r], "score": float(s[j, r])} for r in order])
    return out


class Model:
    """The expected state: what a correct collection holds after the same operations."""

    def __init__(self):
        self.items = {}  # id -> (text, vector, payload)

    def upsert(self, ids, texts, v, pls):
        for j, i in enumerate(ids):
            self.items[i] = (texts[j] if texts is not None else None, v[j], pls[j] if pls is not None else {})

    def delete(self, ids):
        return sum(self.items.pop(i, None) is not None for i in dict.fromkeys(ids))

    def search(self, q, k, flt=None):
        ids = sorted(self.items)
        v = np.stack([self.items[i][1] for i in ids])
        keep = None
        if flt:
            import json

            def text_of(x):
                return x if isinstance(x, str) else json.dumps(x)

            keep = np.array([all(key in self.items[i][2] and text_of(self.items[i][2][key]) == text_of(val)
                                 for key, val in flt.items()) for i in ids])
            if not keep.any():
                return [[] for _ in q]
        return _exact(ids, v, q, k, keep)


def check_step(t, m, queries, filters, exact, k=10):
    """count, get (texts, payloads, vectors bit for bit), and searches: the same on both backends; for exact specs
    also numpy's answer, for ANN specs recall against it."""
    assert t.same(lambda c: c.count()) == len(m.items)
    probe = sorted(m.items)[::7] + ["missing-id"]
    got = t.same(lambda c: c.get(probe, vectors=True))
    assert [g["id"] for g in got] == [i for i in probe if i in m.items]
    for g in got:
        text, vec, pl = m.items[g["id"]]
        assert g["text"] == text and g["payload"] == pl
        np.testing.assert_array_equal(np.asarray(g["vector"], np.float32), vec)
    for flt in filters:
        want = m.search(queries, k, flt)
        a, b = t.do(lambda c: c.search(vectors=queries, k=k, filter=flt))
        if exact:
            assert_same_hits(a, b)
            for got_hits in (a, b):
                assert [[h["id"] for h in r] for r in got_hits] == [[h["id"] for h in r] for r in want]
                for r, w in zip(got_hits, want):
                    np.testing.assert_allclose([h["score"] for h in r], [h["score"] for h in w], rtol=0, atol=1e-5)
                    assert all(h["payload"] == m.items[h["id"]][2] for h in r)
        else:
            if not any(want):
                assert a == b == want
                continue
            assert recall(a, want) >= RECALL_BOUND, (flt, recall(a, want))
            assert recall(b, want) >= RECALL_BOUND, (flt, recall(b, want))
            assert recall(a, b) >= RECALL_BOUND, (flt, recall(a, b))
            every = m.search(queries, len(m.items))  # whatever an ANN index returns, its scores are true cosines
            for got_hits in (a, b):
                for r, w in zip(got_hits, every):
                    true = {h["id"]: h["score"] for h in w}
                    np.testing.assert_allclose([h["score"] for h in r], [true[h["id"]] for h in r], rtol=0, atol=1e-5)

FILTERS = [None, {"label": "c1"}, {"n": 7}, {"even": True}, {"label": "none-such"}]


@pytest.mark.parametrize("spec", ["Flat", "HNSW16", "int8+rescore:50"])
def test_vectors_sequence(twin, spec):
    exact = spec == "Flat"
    t = twin(model="ext", dim=D, spec=spec)
    m = Model()
    ids, texts, v, pls = _data()
    q = np.random.default_rng(9).normal(size=(6, D)).astype(np.float32)
    q = np.vstack([q, v[3:5] + 0.01])  # queries near stored items too
    # info: the same but for the backend and uri
    ia, ib = t.do(lambda c: c.info())
    strip = lambda i: {k: v for k, v in i.items() if k not in ("uri", "backend", "created", "name")}  # noqa: E731
    assert strip(ia) == strip(ib)

    # 1. upsert in two batches (texts partly None, payloads)
    for s in (slice(0, 100), slice(100, N)):
        assert t.same(lambda c: c.upsert(ids[s], texts=texts[s], vectors=v[s], payloads=pls[s])) == {"upserted": 50 if s.start else 100}
        m.upsert(ids[s], texts[s], v[s], pls[s])
    check_step(t, m, q, FILTERS, exact)

    # 2. payload updates (same vectors, new payloads) — then filters see the new payloads only
    upd = ids[:20]
    new_pl = [{"label": "z", "n": 1000 + k} for k in range(20)]
    t.same(lambda c: c.upsert(upd, texts=texts[:20], vectors=v[:20], payloads=new_pl))
    m.upsert(upd, texts[:20], v[:20], new_pl)
    check_step(t, m, q, FILTERS + [{"label": "z"}], exact)

    # 3. replaced vectors and new items
    rv = np.roll(v[20:30], 1, axis=1)
    t.same(lambda c: c.upsert(ids[20:30], vectors=rv, payloads=pls[20:30]))
    m.upsert(ids[20:30], None, rv, pls[20:30])
    extra_ids = [f"new-{k:03d}" for k in range(20)]
    ev = np.random.default_rng(4).normal(size=(20, D)).astype(np.float32)
    epl = [{"label": "c1", "n": 2000 + k} for k in range(20)]
    t.same(lambda c: c.upsert(extra_ids, texts=[f"new {k}" for k in range(20)], vectors=ev, payloads=epl))
    m.upsert(extra_ids, [f"new {k}" for k in range(20)], ev, epl)
    check_step(t, m, q, FILTERS, exact)

    # 4. deletes (with repeats and ids that are not there)
    gone = ids[3:5] + ids[40:50] + extra_ids[:3] + ["nope", ids[40]]
    res = t.same(lambda c: c.delete(gone))
    assert res == {"deleted": m.delete(gone)} == {"deleted": 15}
    check_step(t, m, q, FILTERS, exact)

    # 5. a fresh handle reads the same (caches cold; PostgreSQL searches natively where it can)
    fresh = type(t)(Collection.open(str(t.lance.uri.path)), Collection.open(f"{t.pg.store.dsn}&collection={t.pg.name}"))
    try:
        check_step(fresh, m, q, FILTERS[:2], exact)
        ea, eb = fresh.do(lambda c: c.export())
        assert ea.ids == eb.ids == sorted(m.items)
        np.testing.assert_array_equal(np.asarray(ea.vectors), np.asarray(eb.vectors))
        assert list(ea.labels) == list(eb.labels)
    finally:
        fresh.close()

    # 6. a second slot filled for some items; searched directly; counts per slot
    t.same(lambda c: c.add_slot("other", dim=8).name)
    w = np.random.default_rng(5).normal(size=(30, 8)).astype(np.float32)
    t.do(lambda c: c.update_vectors("other", ids[50:80], w))
    assert t.same(lambda c: c.count("other")) == 30
    qa = np.random.default_rng(6).normal(size=(4, 8)).astype(np.float32)
    a = t.same(lambda c: c.search(vectors=qa, k=5, slot="other")) if exact else None
    if exact:
        want = _exact(ids[50:80], w, qa, 5)
        assert [[h["id"] for h in r] for r in a] == [[h["id"] for h in r] for r in want]
    assert t.same(lambda c: [s["name"] for s in c.info()["slots"]]) == ["ext", "other"]


# ------------------------------------------------------------------------------------------------------ upgrade
OLD, NEW = "glove-50", "minilm-l3-onnx"
QUERIES = ["oil prices and the economy", "football match result", "mobile phone market", "election campaign"]


@pytest.fixture(scope="module")
def news():
    return bbc_leads(120)


def _searches(t, strategies=up.STRATEGIES):
    for s in strategies:
        for flt in (None, {"label": "business"}):
            hits = t.same(lambda c: c.search(texts=QUERIES, k=10, filter=flt, strategy=s))
            assert all(len(r) == 10 for r in hits) or s == "new", (s, flt)  # new: backfilled items only
            if flt:
                assert all(h["payload"]["label"] == "business" for r in hits for h in r)


def _same_status(a, b):
    a, b = dict(a), dict(b)
    a.pop("collection"), b.pop("collection")
    ma, mb = a.pop("metrics"), b.pop("metrics")
    assert a == b
    assert ma.keys() == mb.keys()
    for s in ma:
        for key in ma[s]:
            assert ma[s][key] == pytest.approx(mb[s][key], abs=1e-9), (s, key)


def test_upgrade_sequence(twin, news):
    ids, texts, labels = news
    t = twin(model=OLD)
    pls = [{"label": lab} for lab in labels]
    t.same(lambda c: c.upsert(ids, texts=texts, payloads=pls))
    _searches(t, ["old"])
    st = t.same(lambda c: up.start(c, model=NEW, sample=40, seed=0), check=_same_status)
    assert st["state"] == "open" and st["backfilled"] == 30  # a fifth of the sample is held out as golden queries
    fa, fb = (c.meta.upgrade.fusion for c in t.both)
    assert fa.keys() == fb.keys() and fa["queries"] == fb["queries"]
    np.testing.assert_allclose(fa["A"] + fa["B"], fb["A"] + fb["B"], rtol=0, atol=1e-6)
    # the adapter (stored per backend) maps a query alike
    qn = t.lance.encode(QUERIES, NEW)
    np.testing.assert_allclose(*(up.load_adapter(c).transform(qn) for c in t.both), rtol=0, atol=1e-6)
    _searches(t)
    for step in (25, 25):
        res = t.same(lambda c: {k: v for k, v in up.backfill(c, limit=step, batch_size=10).items() if k != "seconds"})
        assert res["backfilled"] == step
        assert t.same(lambda c: c.count(NEW)) == t.same(lambda c: c.export(slot=NEW).ids).__len__()
        _searches(t)
    # the backfill wrote the same vectors in the same items
    ea, eb = t.do(lambda c: c.export(slot=NEW))
    assert ea.ids == eb.ids and len(ea.ids) == 80
    np.testing.assert_array_equal(np.asarray(ea.vectors), np.asarray(eb.vectors))
    t.same(lambda c: up.status(c), check=_same_status)
    assert t.same(lambda c: up.switch(c, force=True)) == {"active": NEW, "previous": OLD, "state": "switched"}
    _searches(t)
    res = t.same(lambda c: {k: v for k, v in up.backfill(c).items() if k != "seconds"})
    assert res["fraction"] == 1.0
    assert t.same(lambda c: up.finish(c)) == {"active": NEW, "dropped": OLD, "fraction": 1.0}
    assert t.same(lambda c: [s["name"] for s in c.info()["slots"]]) == [NEW]
    for flt in (None, {"label": "business"}):
        t.same(lambda c: c.search(texts=QUERIES, k=10, filter=flt))

"""Every search path of an open upgrade ranks by its documented formula, recomputed here in numpy (float64) from the
stored vectors (`Collection.export(slot=…)`), the adapter and the fusion weights:

    old      q_old·old_i                          adapted  A(q_new)·old_i
    new      q_new·new_i, backfilled items only   mixed    q_new·new_i where backfilled, else A(q_new)·old_i
    fused    backfilled: wb0·q_old·old_i + wb1·A(q_new)·old_i + wb2·q_new·new_i + wb3
             others:     wa0·q_old·old_i + wa1·A(q_new)·old_i + wa2
             (a fusion fitted on pseudo-queries: wb = (1 − f)·B + f·B_end, f the backfilled share of the live items)

(cosines: every query and item vector unit-normalised). The one scorer (`collections/upgrade/scorer.py`) has two
candidate generators: `all_rows` (Flat, items x dim ≤ EXACT_FUSED_CELLS; and every filtered search, the filter a mask
over the rows) and `per_slot_top_k` (a non-Flat spec, or EXACT_FUSED_CELLS patched small); `mixed` is the same formula
with other weights. Real models: glove-50 (old) -> minilm-l3-onnx, 120 bbc-news items, 60 backfilled.
"""


import numpy as np
import pytest

from repspace.collections import Collection
from repspace.collections import upgrade as up
from repspace.collections.upgrade import scorer
from tests.collections.conftest import bbc_leads

pytestmark = pytest.mark.real
OLD, NEW = "glove-50", "minilm-l3-onnx"
N_ITEMS, SAMPLE, BACKFILL = 120, 50, 20  # start stores 40 of the sample (a fifth is golden), the backfill 20 more
TEXTS = ["oil prices and the economy", "football match result", "mobile phone market", "the prime minister's speech",
         "film awards ceremony"]
TOL = 1e-5


# ---------------------------------------------------------------------------------------------------------------
# The one place that reads the upgrade's internal state: adapt here when the state becomes typed.
def upgrade_parts(c):
    """(wa: [w_oo, w_ao, bias], wb: [w_oo, w_ao, w_nn, bias], adapter transform new -> old) of the open upgrade. A
    fusion fitted on pseudo-queries fades B into B_end with the backfilled share f of the live items:
    wb = (1 − f)·B + f·B_end."""
    c.reload()
    f = c.meta.upgrade.fusion
    wb = np.asarray(f["B"], np.float64)
    if "B_end" in f:
        share = c.count(NEW) / c.count()
        wb = (1 - share) * wb + share * np.asarray(f["B_end"], np.float64)
    return np.asarray(f["A"], np.float64), wb, up.load_adapter(c).transform


def spy(monkeypatch, name):
    """Count calls of one candidate generator of the scorer ("all_rows" or "per_slot_top_k")."""
    fn = getattr(scorer, name)
    calls = []

    def wrapped(*a, **kw):
        calls.append(name)
        return fn(*a, **kw)

    monkeypatch.setattr(scorer, name, wrapped)
    return calls


# ---------------------------------------------------------------------------------------------------------------
def _items():
    return bbc_leads(N_ITEMS)


def _build(path, spec, items):
    ids, texts, labels = items
    c = Collection.create(path, model=OLD, spec=spec)
    c.upsert(ids, texts=texts, payloads=[{"label": lab, "all": "yes"} for lab in labels])
    up.start(c, model=NEW, sample=SAMPLE, seed=0)
    up.backfill(c, limit=BACKFILL)
    return c


@pytest.fixture(scope="module")
def items():
    return _items()


@pytest.fixture(scope="module")
def flat(tmp_path_factory, items):
    c = _build(tmp_path_factory.mktemp("formula") / "flat", "Flat", items)
    yield c
    c.close()


@pytest.fixture(scope="module")
def queries(flat):
    return flat.encode(TEXTS, OLD), flat.encode(TEXTS, NEW)


def nr(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def terms(c, q_old, q_new):
    """Every item (old slot order): ids, labels, has_new, and the three cosines per query (nq, n)."""
    _, _, adapt = upgrade_parts(c)
    so, sn = c.export(slot=OLD), c.export(slot=NEW)
    ids = list(so.ids)
    vo = nr(so.vectors)
    pos = {i: r for r, i in enumerate(sn.ids)}
    has_new = np.array([i in pos for i in ids])
    vn = np.zeros((len(ids), sn.dim))
    vn[has_new] = nr(sn.vectors)[[pos[i] for i in ids if i in pos]]
    labels = {g["id"]: g["payload"].get("label") for g in c.get(ids)}
    qo, qa, qn = nr(q_old), nr(adapt(q_new)), nr(q_new)
    return {"ids": ids, "labels": np.array([labels[i] for i in ids]), "has_new": has_new,
            "oo": qo @ vo.T, "ao": qa @ vo.T, "nn": qn @ vn.T, "qo": qo, "qa": qa, "qn": qn, "vo": vo, "vn": vn}


def fused_scores(c, t):
    wa, wb, _ = upgrade_parts(c)
    return np.where(t["has_new"], wb[0] * t["oo"] + wb[1] * t["ao"] + wb[2] * t["nn"] + wb[3],
                    wa[0] * t["oo"] + wa[1] * t["ao"] + wa[2])


def mixed_scores(t):
    return np.where(t["has_new"], t["nn"], t["ao"])


def assert_ranking(hits, ids, scores, k, allowed=None):
    """hits (one list per query) are the top k of `scores` (nq, n) over the items where `allowed` (nq, n) holds:
    every hit's score is its formula score, the list is the formula's top k (ids exactly, unless two expected scores
    tie within TOL: then the scores position by position)."""
    allowed = np.ones(scores.shape, bool) if allowed is None else np.broadcast_to(allowed, scores.shape)
    row = {i: r for r, i in enumerate(ids)}
    for j, got in enumerate(hits):
        cand = np.flatnonzero(allowed[j])
        order = cand[np.lexsort((np.asarray([ids[r] for r in cand], dtype=object), -scores[j, cand]))][:k]
        want_ids, want_sc = [ids[r] for r in order], scores[j, order]
        assert len(got) == len(want_ids)
        got_ids, got_sc = [h["id"] for h in got], np.array([h["score"] for h in got])
        assert all(allowed[j, row[i]] for i in got_ids), "a hit outside the allowed items"
        np.testing.assert_allclose(got_sc, [scores[j, row[i]] for i in got_ids], rtol=TOL, atol=TOL)
        np.testing.assert_allclose(got_sc, want_sc, rtol=TOL, atol=TOL)
        near_tie = len(order) > 1 and np.min(-np.diff(scores[j, cand[np.argsort(-scores[j, cand])]][: k + 1])) < 2 * TOL
        if not near_tie:
            assert got_ids == want_ids


def topk_mask(s, K):
    """(nq, n) mask of each row's top K (the candidates of one slot's search)."""
    m = np.zeros(s.shape, bool)
    kk = min(K, s.shape[1])
    np.put_along_axis(m, np.argsort(-s, axis=1, kind="stable")[:, :kk], True, axis=1)
    return m


# -------------------------------------------------------------------------------------------------- setup facts
def test_the_collection_is_half_backfilled(flat, items):
    t = terms(flat, *[np.ones((1, d), np.float32) for d in (50, 384)])
    assert len(t["ids"]) == N_ITEMS and t["has_new"].sum() == (SAMPLE - 10) + BACKFILL
    wa, wb, _ = upgrade_parts(flat)
    assert wa.shape == (3,) and wb.shape == (4,) and (wa[:2] >= 0).all() and (wb[:3] >= 0).all()


# ------------------------------------------------------------------------------------------------------- paths
@pytest.mark.parametrize("k", [1, 10, 50])
def test_exact_path(flat, queries, monkeypatch, k):
    exact, fast = spy(monkeypatch, "all_rows"), spy(monkeypatch, "per_slot_top_k")
    hits = up.search_encoded(flat, *queries, k, {}, "fused")
    assert exact and not fast, "a small Flat collection must score every item"
    t = terms(flat, *queries)
    assert_ranking(hits, t["ids"], fused_scores(flat, t), k)


def test_search_texts_default_is_the_fused_formula(flat, queries):
    t = terms(flat, *queries)
    hits = flat.search(texts=TEXTS, k=10)
    assert_ranking(hits, t["ids"], fused_scores(flat, t), 10)
    assert hits == flat.search(texts=TEXTS, k=10, strategy="fused")


def test_fast_path_exhaustive_and_on_its_candidates(flat, queries, monkeypatch):
    monkeypatch.setattr(scorer, "EXACT_FUSED_CELLS", 0)  # as a collection too large to score whole
    exact, fast = spy(monkeypatch, "all_rows"), spy(monkeypatch, "per_slot_top_k")
    t = terms(flat, *queries)
    want = fused_scores(flat, t)
    # candidates ≥ items: every item is a candidate, the ranking is the formula's over all items
    hits = up.search_encoded(flat, *queries, 20, {}, "fused", candidates=N_ITEMS)
    assert fast and not exact, "EXACT_FUSED_CELLS = 0 must send fused through the per-slot candidates"
    assert_ranking(hits, t["ids"], want, 20)
    # the default K = max(100, 4k) < items: candidates are the top K of the A-combined old-slot query and the top K
    # of the new-slot query; the ranking is the formula's over their union
    wa, wb, _ = upgrade_parts(flat)
    for k in (5, 10):
        K = max(100, 4 * k)
        assert K < N_ITEMS
        a_comb = (wa[0] * t["qo"] + wa[1] * t["qa"]) @ t["vo"].T
        nn = np.where(t["has_new"], t["nn"], -np.inf)
        cand = topk_mask(a_comb, K) | (topk_mask(nn, K) & t["has_new"])
        assert not cand.all()
        assert_ranking(up.search_encoded(flat, *queries, k, {}, "fused"), t["ids"], want, k, allowed=cand)


def test_fast_path_of_a_non_flat_spec(tmp_path, items, queries, monkeypatch):
    c = _build(tmp_path / "hnsw", "HNSW32", items)
    try:
        exact, fast = spy(monkeypatch, "all_rows"), spy(monkeypatch, "per_slot_top_k")
        t = terms(c, *queries)
        want = fused_scores(c, t)
        hits = up.search_encoded(c, *queries, 15, {}, "fused", candidates=N_ITEMS)
        assert fast and not exact, "an HNSW collection must take the per-slot candidates"
        assert_ranking(hits, t["ids"], want, 15)
        # default K = 100 from an approximate index: every hit scores its formula, in order, near the exact top 10
        hits = c.search(texts=TEXTS, k=10)
        row = {i: r for r, i in enumerate(t["ids"])}
        for j, got in enumerate(hits):
            sc = np.array([h["score"] for h in got])
            np.testing.assert_allclose(sc, [want[j, row[h["id"]]] for h in got], rtol=TOL, atol=TOL)
            assert (np.diff(sc) <= 0).all()
            best = {t["ids"][r] for r in np.argsort(-want[j])[:10]}
            assert len(best & {h["id"] for h in got}) >= 9
    finally:
        c.close()


@pytest.mark.parametrize("label", ["business", "sports"])
def test_filtered_path(flat, queries, monkeypatch, label):
    fast = spy(monkeypatch, "per_slot_top_k")
    t = terms(flat, *queries)
    allowed = (t["labels"] == label)[None, :]
    assert 5 < allowed.sum() < 100
    for k in (3, 10):
        hits = up.search_encoded(flat, *queries, k, {"label": label}, "fused")
        assert not fast, "a filtered fused search scores every matching item"
        assert_ranking(hits, t["ids"], fused_scores(flat, t), k, allowed=allowed)
        assert_ranking(up.search_encoded(flat, *queries, k, {"label": label}, "mixed"), t["ids"], mixed_scores(t), k,
                       allowed=allowed)


def test_filter_every_item_matches_equals_no_filter(flat, queries, monkeypatch):
    """A filter is a mask over the rows: one that every item matches gives exactly the unfiltered ranking."""
    fast = spy(monkeypatch, "per_slot_top_k")
    t = terms(flat, *queries)
    want = fused_scores(flat, t)
    everyone = {"all": "yes"}
    for k in (10, 20):
        hits = up.search_encoded(flat, *queries, k, everyone, "fused")
        assert not fast
        assert_ranking(hits, t["ids"], want, k)
        assert hits == up.search_encoded(flat, *queries, k, {}, "fused")


def test_mixed(flat, queries, monkeypatch):
    t = terms(flat, *queries)
    assert_ranking(up.search_encoded(flat, *queries, 10, {}, "mixed"), t["ids"], mixed_scores(t), 10)
    assert_ranking(flat.search(texts=TEXTS, k=10, strategy="mixed"), t["ids"], mixed_scores(t), 10)
    # per-slot candidates (old slot: A(q_new)'s top K; new slot: q_new's top K), each scored by its definition
    monkeypatch.setattr(scorer, "EXACT_FUSED_CELLS", 0)
    cand = topk_mask(t["ao"], 100) | t["has_new"][None, :]  # K = 100: ao's top 100, every backfilled item (60)
    assert_ranking(up.search_encoded(flat, *queries, 10, {}, "mixed"), t["ids"], mixed_scores(t), 10, allowed=cand)


@pytest.mark.parametrize("flt", [{}, {"label": "business"}])
def test_single_slot_strategies(flat, queries, flt):
    t = terms(flat, *queries)
    allowed = np.ones(len(t["ids"]), bool) if not flt else t["labels"] == flt["label"]
    k = 10
    old = flat.search(texts=TEXTS, k=k, strategy="old", filter=flt)
    assert_ranking(old, t["ids"], t["oo"], k, allowed=allowed[None, :])
    assert old == flat.search(vectors=queries[0], k=k, slot=OLD, filter=flt)  # the old slot's own search
    assert_ranking(flat.search(texts=TEXTS, k=k, strategy="adapted", filter=flt), t["ids"], t["ao"], k,
                   allowed=allowed[None, :])
    new = flat.search(texts=TEXTS, k=k, strategy="new", filter=flt)
    assert_ranking(new, t["ids"], t["nn"], k, allowed=(allowed & t["has_new"])[None, :])
    backfilled = {i for i, h in zip(t["ids"], t["has_new"]) if h}
    assert all(h["id"] in backfilled for row in new for h in row)


def test_store_path_of_a_pgvector_index(pg_dsn, items, queries, monkeypatch):
    """A PostgreSQL collection with an HNSW spec: each slot's candidates from pgvector's own index, their union scored
    by the same formula from the stored vectors (`scorer.store_top_k`; nothing loaded into repspace's memory)."""
    import uuid

    from repspace.collections import with_collection

    c = _build(with_collection(pg_dsn, f"f{uuid.uuid4().hex[:8]}"), "HNSW16", items)
    try:
        store, exact = spy(monkeypatch, "store_top_k"), spy(monkeypatch, "all_rows")
        fast = spy(monkeypatch, "per_slot_top_k")
        t = terms(c, *queries)
        want = fused_scores(c, t)
        hits = up.search_encoded(c, *queries, 15, {}, "fused", candidates=N_ITEMS)
        assert store and not exact and not fast and not c._caches
        assert_ranking(hits, t["ids"], want, 15)
        row = {i: r for r, i in enumerate(t["ids"])}
        for j, got in enumerate(c.search(texts=TEXTS, k=10)):
            sc = np.array([h["score"] for h in got])
            np.testing.assert_allclose(sc, [want[j, row[h["id"]]] for h in got], rtol=TOL, atol=TOL)
            best = {t["ids"][r] for r in np.argsort(-want[j])[:10]}
            assert len(best & {h["id"] for h in got}) >= 9
        mixed = up.search_encoded(c, *queries, 10, {}, "mixed", candidates=N_ITEMS)
        assert_ranking(mixed, t["ids"], mixed_scores(t), 10)
    finally:
        c.drop()


def test_store_path_of_a_lancedb_ivf_index(tmp_path, items, queries, monkeypatch):
    """A LanceDB collection with an IVF spec: each slot's candidates from LanceDB's search, which returns both slots'
    vectors with the hits (`Store.candidates`: nothing fetched afterwards), scored by the same formula."""
    c = _build(tmp_path / "ivf", "IVF2,HNSW_SQ+nprobe:2", items)  # 120 items: too few to train, LanceDB scans exactly
    try:
        store, exact = spy(monkeypatch, "store_top_k"), spy(monkeypatch, "all_rows")
        t = terms(c, *queries)
        want = fused_scores(c, t)
        fetched = []
        monkeypatch.setattr(type(c.store), "fetch", lambda self, *a: fetched.append(a))
        hits = up.search_encoded(c, *queries, 15, {}, "fused", candidates=N_ITEMS)
        assert store and not exact and not c._caches and not fetched
        assert_ranking(hits, t["ids"], want, 15)
        mixed = up.search_encoded(c, *queries, 10, {}, "mixed", candidates=N_ITEMS)
        assert_ranking(mixed, t["ids"], mixed_scores(t), 10)
        for j, got in enumerate(c.search(texts=TEXTS, k=10)):  # default K: 40 candidates per slot
            best = {t["ids"][r] for r in np.argsort(-want[j])[:10]}
            assert len(best & {h["id"] for h in got}) >= 9
    finally:
        c.close()


@pytest.mark.parametrize("spec", ["Flat", "IVF2,HNSW_SQ+nprobe:2"])
def test_a_faded_fusion_at_100_percent_is_the_new_slots_search(tmp_path, items, queries, spec, monkeypatch):
    """Fitted on pseudo-queries, B has faded into B_end once every item is backfilled: `fused` is then the new slot's
    own search (the same ids in the same order, filtered or not), each score mapped by B_end (wb2·cosine + wb3) —
    the formula with f = 1. Both paths: repspace's layer (Flat) and the store's (a LanceDB IVF spec)."""
    c = _build(tmp_path / "full", spec, items)
    try:
        up.backfill(c)
        assert up.fraction(c) == 1.0
        scored = [spy(monkeypatch, name) for name in ("all_rows", "per_slot_top_k", "store_top_k")]
        wb = c.meta.upgrade.fusion["B_end"]
        assert upgrade_parts(c)[1].tolist() == pytest.approx(wb)
        for flt in ({}, {"label": "business"}):
            fused = up.search_encoded(c, *queries, 10, flt, "fused")
            new = up.search_encoded(c, *queries, 10, flt, "new")
            for f, n in zip(fused, new):
                assert [h["id"] for h in f] == [h["id"] for h in n] and len(f) == 10
                np.testing.assert_allclose([h["score"] for h in f], [wb[2] * h["score"] + wb[3] for h in n],
                                           rtol=1e-6, atol=1e-6)
        assert not any(scored)  # the new slot's own search answered: the scorer ran for neither
        encoded, encode = [], type(c).encode

        def spy_encode(self, texts, slot=None, **kw):
            encoded.append(getattr(slot, "name", slot))
            return encode(self, texts, slot, **kw)

        monkeypatch.setattr(type(c), "encode", spy_encode)
        hits = c.search(texts=TEXTS[:2], k=5)  # by texts: the old model no longer encodes the query
        assert encoded == [NEW] and len(hits[0]) == 5
        t = terms(c, *queries)
        assert_ranking(up.search_encoded(c, *queries, 10, {}, "fused"), t["ids"], fused_scores(c, t), 10)
    finally:
        c.close()

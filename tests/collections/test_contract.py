"""One contract suite, run against both backends (LanceDB embedded, a real PostgreSQL + pgvector)."""

import json

import numpy as np
import pytest

from repspace.collections import Collection
from repspace.collections.ingest import upsert_space
from repspace.errors import (CollectionNotFoundError, DimensionMismatchError, InvalidInputError, InvalidVectorsError,
                             OutputExistsError, RepspaceError, UnknownNameError)

D = 16


def data(n=200, d=D, seed=0):
    r = np.random.default_rng(seed)
    v = r.normal(size=(n, d)).astype(np.float32)
    ids = [f"item-{k:04d}" for k in range(n)]
    pls = [{"label": f"c{k % 4}", "n": k} for k in range(n)]
    return ids, v, pls


def exact(v, q, k):
    vn = v / np.linalg.norm(v, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    s = qn @ vn.T
    return np.argsort(-s, axis=1, kind="stable")[:, :k], np.sort(s, axis=1)[:, ::-1][:, :k]


@pytest.fixture
def filled(new_uri):
    ids, v, pls = data()
    c = Collection.create(new_uri(), model="ext-model", dim=D)
    c.upsert(ids, vectors=v, payloads=pls)
    yield c, ids, v, pls
    c.close()


def test_create_info_keys(new_uri, backend):
    c = Collection.create(new_uri(), model="ext-model", dim=D, spec="Flat")
    info = c.info()
    assert info["backend"] == backend and info["count"] == 0 and info["spec"] == "Flat"
    assert info["active"] == "ext-model"
    assert info["slots"] == [{"name": "ext-model", "model": "ext-model", "model_version": "", "dim": D, "count": 0,
                              "encodes": False}]
    reopened = Collection.open(c.uri.path if backend == "lancedb" else str(c.store.dsn) + "&collection=" + c.name)
    assert reopened.info()["slots"] == info["slots"]


def test_upsert_get_count_delete(filled):
    c, ids, v, pls = filled
    assert c.count() == 200
    got = c.get(["item-0003", "missing", "item-0001"], vectors=True)
    assert [g["id"] for g in got] == ["item-0003", "item-0001"]
    assert got[0]["payload"] == {"label": "c3", "n": 3}
    np.testing.assert_allclose(got[0]["vector"], v[3], rtol=0, atol=0)
    assert c.delete(["item-0003", "item-0004", "nope"]) == {"deleted": 2}
    assert c.count() == 198
    assert c.get(["item-0003"]) == []
    assert all(h["id"] not in ("item-0003", "item-0004") for h in c.search(vectors=v[3:5], k=10)[0])


def test_reupsert_replaces_never_two_rows(filled):
    c, ids, v, pls = filled
    new = np.roll(v[:5], 1, axis=1)
    c.upsert(ids[:5], vectors=new, payloads=[{"label": "z"}] * 5)
    assert c.count() == 200
    got = c.get(ids[:5], vectors=True)
    np.testing.assert_array_equal(np.asarray([g["vector"] for g in got], np.float32), new)
    assert all(g["payload"] == {"label": "z"} for g in got)
    assert len(c.export().ids) == 200


def test_exact_search_equals_numpy(filled):
    c, ids, v, pls = filled
    q = np.random.default_rng(5).normal(size=(7, D)).astype(np.float32)
    rows, scores = exact(v, q, 10)
    hits = c.search(vectors=q, k=10)
    assert [[h["id"] for h in row] for row in hits] == [[ids[r] for r in rr] for rr in rows]
    np.testing.assert_allclose([[h["score"] for h in row] for row in hits], scores, atol=1e-5)
    assert hits[0][0]["payload"] == pls[rows[0][0]]


def test_search_sees_every_write_from_another_handle(filled):
    c, ids, v, pls = filled
    c.search(vectors=v[:1], k=1)  # cache loaded
    other = Collection.open(c.uri.path if c.backend == "lancedb" else f"{c.store.dsn}&collection={c.name}")
    probe = np.zeros((1, D), np.float32)
    probe[0, 0] = 1
    other.upsert(["fresh"], vectors=probe, payloads=[{"label": "new"}])
    other.delete([ids[0]])
    assert c.search(vectors=probe, k=1)[0][0]["id"] == "fresh"
    assert all(h["id"] != ids[0] for h in c.search(vectors=v[:1], k=5)[0])
    other.close()


def test_payload_filter(filled):
    c, ids, v, pls = filled
    hits = c.search(vectors=v[:3], k=5, filter={"label": "c2"})
    assert all(h["payload"]["label"] == "c2" for row in hits for h in row)
    assert len(hits[0]) == 5
    want = [i for i, p in zip(ids, pls) if p["label"] == "c2"]
    rows, _ = exact(v[[ids.index(i) for i in want]], v[:1], 5)
    assert [h["id"] for h in hits[0]] == [want[r] for r in rows[0]]
    # numbers compare by their JSON text, as PostgreSQL's ->> does
    assert [h["id"] for h in c.search(vectors=v[:1], k=3, filter={"n": 7})[0]] == ["item-0007"]
    assert c.search(vectors=v[:1], k=3, filter={"label": "none-such"}) == [[]]


@pytest.mark.parametrize("spec", ["HNSW16", "int8+rescore:50", "binary+rescore:250", "funnel:8/16:100", "int8",
                                  "IVF4,PQ4+refine:8"])
def test_specs_recall(new_uri, spec):
    r = np.random.default_rng(1)
    # decaying spectrum: prefixes carry most of the information (funnels), rotation-free
    v = (r.normal(size=(500, D)) * np.linspace(2, 0.3, D)).astype(np.float32)
    ids = [f"x{k}" for k in range(500)]
    c = Collection.create(new_uri(), model="ext", dim=D, spec=spec)
    c.upsert(ids, vectors=v)
    q = v[:40] + 0.05 * r.normal(size=(40, D)).astype(np.float32)
    rows, _ = exact(v, q, 10)
    hits = c.search(vectors=q, k=10)
    recall = np.mean([len({h["id"] for h in row} & {ids[x] for x in rr}) / 10 for row, rr in zip(hits, rows)])
    assert recall >= (0.9 if spec != "int8" else 0.8), recall
    assert c.info()["spec"] == spec
    c.close()


def test_export_import_round_trip(filled, new_uri):
    c, ids, v, pls = filled
    space = c.export()
    assert space.model == "ext-model" and space.count == 200 and space.ids == sorted(ids)
    np.testing.assert_array_equal(np.asarray(space.vectors), v[np.argsort(ids)])
    assert list(space.labels[:2]) == ["c0", "c1"]
    d = Collection.create(new_uri(), model="ext-model", dim=D)
    assert upsert_space(d, space)["upserted"] == 200
    assert d.count() == 200
    assert d.get(["item-0002"])[0]["payload"] == {"label": "c2"}
    assert upsert_space(d, space)["skipped"] == 200  # unchanged batches are not rewritten


HOSTILE = ["'; DROP TABLE repspace_collections; --", "quote\"s and 'single'", "nul\x00byte", "back\\slash\\0",
           "x" * 10000, "ünïcødé ✓", "%s %(q)s {} $1"]


def test_hostile_values_round_trip(new_uri):
    c = Collection.create(new_uri(), model="ext", dim=4)
    n = len(HOSTILE)
    v = np.eye(n, 4, dtype=np.float32) + 0.01
    pls = [{h: h, "nested": {"k": [h, 1]}} for h in HOSTILE]
    c.upsert(HOSTILE, vectors=v, payloads=pls, texts=HOSTILE)
    got = {g["id"]: g for g in c.get(HOSTILE)}
    assert set(got) == set(HOSTILE)
    for h, p in zip(HOSTILE, pls):
        assert got[h]["text"] == h and got[h]["payload"] == p
    for j, h in enumerate(HOSTILE):
        hits = c.search(vectors=v[j : j + 1], k=n, filter={h: h})
        assert [x["id"] for x in hits[0]] == [h]
    assert c.delete([HOSTILE[0], HOSTILE[2]])["deleted"] == 2
    assert c.count() == n - 2
    assert sorted(c.export().ids) == sorted(HOSTILE[1:2] + HOSTILE[3:])


def test_bad_input_changes_nothing(filled):
    c, ids, v, pls = filled
    cases = [
        (DimensionMismatchError, dict(vectors=np.ones((2, D + 1), np.float32))),
        (InvalidVectorsError, dict(vectors=np.full((2, D), np.nan, np.float32))),
        (InvalidVectorsError, dict(vectors=np.array([[np.inf] * D, [0] * D], np.float32))),
        (InvalidVectorsError, dict(vectors=np.ones((2, D)), model="another-model")),
        (InvalidInputError, dict(vectors=np.ones((2, D)), payloads=[{"a": float("nan")}, {}])),
        (InvalidInputError, dict(vectors=np.ones((2, D)), payloads=["not a dict", {}])),
        (InvalidInputError, dict(texts=["a", "b"])),  # an external model cannot encode
        (UnknownNameError, dict(vectors=np.ones((2, D)), slot="no-such-slot")),
    ]
    for err, kw in cases:
        with pytest.raises(err):
            c.upsert(["new-1", "new-2"], **kw)
    with pytest.raises(InvalidInputError, match="duplicate"):
        c.upsert(["dup", "dup"], vectors=np.ones((2, D)))
    with pytest.raises(InvalidInputError):
        c.upsert(["", "b"], vectors=np.ones((2, D)))
    assert c.count() == 200 and c.get(["new-1", "dup"]) == []
    with pytest.raises(InvalidInputError):
        c.search(vectors=v[:1], k=0)
    with pytest.raises(DimensionMismatchError):
        c.search(vectors=np.ones((1, 3)), k=1)
    with pytest.raises(InvalidInputError):
        c.search(vectors=v[:1], filter={"label": ["list"]})
    with pytest.raises(InvalidInputError, match="upgrade"):
        c.search(vectors=v[:1], strategy="fused")


def test_unknown_collection_and_bad_specs(new_uri):
    with pytest.raises(CollectionNotFoundError):
        Collection.open(new_uri())
    for spec, err in [("HNSW", InvalidInputError), ("sparse", InvalidInputError), ("funnel:4/8", DimensionMismatchError),
                      ("bogus", InvalidInputError)]:
        with pytest.raises(err):
            Collection.create(new_uri(), model="ext", dim=D, spec=spec)
    with pytest.raises(UnknownNameError, match="dimension"):
        Collection.create(new_uri(), model="not-a-model")
    uri = new_uri()
    Collection.create(uri, model="ext", dim=D).close()
    with pytest.raises(OutputExistsError):
        Collection.create(uri, model="ext", dim=D)


def test_slots_side_by_side(filled):
    c, ids, v, pls = filled
    slot = c.add_slot("other-model", dim=8)
    assert slot.name == "other-model" and slot.column == "v_1"
    info = c.info()
    assert [s["name"] for s in info["slots"]] == ["ext-model", "other-model"]
    assert [s["count"] for s in info["slots"]] == [200, 0]
    w = np.random.default_rng(3).normal(size=(10, 8)).astype(np.float32)
    c.update_vectors("other-model", ids[:10], w)
    assert c.count("other-model") == 10
    assert c.search(vectors=w[:1], k=1, slot="other-model")[0][0]["id"] == ids[0]
    # the active slot is unchanged by filling another
    assert c.search(vectors=v[:1], k=1)[0][0]["id"] == ids[0]
    c.set_active("other-model")
    assert c.info()["active"] == "other-model"
    assert c.search(vectors=w[1:2], k=1)[0][0]["id"] == ids[1]
    with pytest.raises(RepspaceError):
        c.drop_slot("other-model")
    c.drop_slot("ext-model")
    assert [s["name"] for s in c.info()["slots"]] == ["other-model"]
    assert c.count() == 200


def test_json_payload_text_form(filled):
    c, ids, v, pls = filled
    c.upsert(["b"], vectors=v[:1], payloads=[{"flag": True, "x": None, "f": 1.5}])
    assert [h["id"] for h in c.search(vectors=v[:1], k=5, filter={"flag": True})[0]] == ["b"]
    assert [h["id"] for h in c.search(vectors=v[:1], k=5, filter={"f": "1.5"})[0]] == ["b"]
    assert c.search(vectors=v[:1], k=5, filter={"x": "null"}) == [[]]
    assert json.loads(json.dumps(c.get(["b"])[0]["payload"])) == {"flag": True, "x": None, "f": 1.5}


def test_backfill_write_never_overwrites_a_newer_text(filled):
    c, ids, v, pls = filled
    c.upsert(["t1", "t2"], texts=["old text", "other"], vectors=v[:2])
    c.add_slot("other-model", dim=D)
    w = np.ones((2, D), np.float32)
    c.upsert(["t1"], texts=["new text"], vectors=v[2:3])  # a newer upsert after the backfill read "old text"
    c.update_vectors("other-model", ["t1", "t2"], w, texts=["old text", "other"])
    got = {g["id"]: g["vector"] for g in c.get(["t1", "t2"], vectors=True, slot="other-model")}
    assert got["t1"] is None and got["t2"] is not None


def test_vectors_into_another_slot_keep_texts_and_payloads(filled):
    from repspace import Space
    from repspace.collections.ingest import upsert_space

    c, ids, v, pls = filled
    c.upsert(["keep"], texts=["a text"], vectors=v[:1], payloads=[{"k": "v"}])
    c.add_slot("other-model", dim=4)
    upsert_space(c, Space(np.ones((2, 4), np.float32), ["keep", "not-there"], model="other-model"), slot="other-model")
    row = c.get(["keep"], vectors=True)[0]
    assert row["text"] == "a text" and row["payload"] == {"k": "v"} and row["vector"] is not None
    assert c.get(["keep"], vectors=True, slot="other-model")[0]["vector"] == [1.0] * 4
    assert c.get(["not-there"]) == []


def test_lone_surrogates_are_refused(filled):
    c, ids, v, pls = filled
    for kw in (dict(ids=["bad\ud800"]), dict(ids=["ok"], payloads=[{"k": "\ud800"}])):
        with pytest.raises(InvalidInputError, match="surrogate"):
            c.upsert(kw["ids"], vectors=v[:1], payloads=kw.get("payloads"))


def test_passwords_never_in_uri_errors():
    from repspace.collections.uri import parse_uri

    for uri in ("postgresql+psycopg://u:s3cret@h/db?collection=x", "postgresq://u:s3cret@h/db"):
        with pytest.raises(InvalidInputError) as e:
            parse_uri(uri)
        assert "s3cret" not in str(e.value)
    assert parse_uri("POSTGRESQL://u@h/db?collection=x").backend == "pgvector"

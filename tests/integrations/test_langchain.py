"""RepspaceVectorStore beyond the standard suite: a collection that encodes (repspace model), filters,
retrievers, MMR, reopening, bad inputs, and an upgrade served through `fused` with no change in app code."""

import subprocess
import sys

import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402

from repspace.errors import DimensionMismatchError, InvalidInputError, RepspaceError  # noqa: E402
from repspace.integrations.langchain import (RepspaceEmbeddings, RepspaceVectorStore,  # noqa: E402
                                             truncate_normalize)

OLD, NEW = "glove-50", "minilm-l3-onnx"
DOCS = [
    Document(id="football", page_content="The football club won the league after a late goal in the final match.",
             metadata={"label": "sport", "year": 2004}),
    Document(id="tennis", page_content="The tennis champion lost the final set at Wimbledon in a long match.",
             metadata={"label": "sport", "year": 2005}),
    Document(id="oil", page_content="Oil prices rose as the economy slowed and the central bank raised rates.",
             metadata={"label": "business", "year": 2005}),
    Document(id="shares", page_content="Shares of the bank fell after profits dropped and investors sold stock.",
             metadata={"label": "business", "year": 2004}),
    Document(id="phone", page_content="The new mobile phone has a faster chip, a better camera and software.",
             metadata={"label": "tech", "year": 2005}),
]


def test_core_does_not_import_the_frameworks():
    code = ("import sys, repspace, repspace.collections, repspace.integrations; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('langchain_core', 'langchain', "
            "'langchain_tests', 'llama_index')); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.real
def test_collection_encodes(new_uri):
    uri = new_uri()
    store = RepspaceVectorStore.from_documents(DOCS, None, uri=uri, model=OLD)
    assert store.encodes and store.collection.info()["active"] == OLD and store.collection.count() == 5
    got = store.similarity_search("stock market profits at the bank", k=2)
    assert got[0] == DOCS[3] and len(got) == 2
    pairs = store.similarity_search_with_score("a goal in the football match", k=5, filter={"label": "sport"})
    assert [d.id for d, _ in pairs] == ["football", "tennis"] and pairs[0][1] > pairs[1][1]
    assert [d.id for d in store.similarity_search("match", k=5, filter={"label": "sport", "year": 2005})] == ["tennis"]
    rel = store.similarity_search_with_relevance_scores("oil and the economy", k=3)
    assert rel[0][0].id == "oil" and all(0 <= s <= 1 for _, s in rel)
    # by vector: the collection's own model
    q = store.collection.encode(["mobile phone camera"])[0].tolist()
    assert store.similarity_search_by_vector(q, k=1)[0].id == "phone"
    mmr = store.max_marginal_relevance_search("the final match", k=3, fetch_k=5)
    assert len(mmr) == 3 and len({d.id for d in mmr}) == 3
    # retrievers, sync and async
    r = store.as_retriever(search_kwargs={"k": 1, "filter": {"label": "tech"}})
    assert [d.id for d in r.invoke("the economy")] == ["phone"]
    assert store.as_retriever(search_type="mmr", search_kwargs={"k": 2}).invoke("bank")
    # reopening: no model needed, the collection knows its own
    again = RepspaceVectorStore(uri)
    assert again.get_by_ids(["oil", "nope"]) == [DOCS[2]]
    again.delete(["oil"])
    assert store.get_by_ids(["oil"]) == [] and store.collection.count() == 4
    # the same repspace model as an Embeddings object: the collection still encodes
    same = RepspaceVectorStore(uri, embedding=RepspaceEmbeddings(OLD))
    assert same.encodes and same.similarity_search("bank shares", k=1)[0].id == "shares"


@pytest.mark.real
def test_async_variants(tmp_path):
    import asyncio

    async def main():
        store = RepspaceVectorStore(str(tmp_path / "c"), model=OLD)
        ids = await store.aadd_documents(DOCS)
        assert ids == [d.id for d in DOCS]
        got = await store.asimilarity_search("tennis at Wimbledon", k=1)
        pairs = await store.asimilarity_search_with_score("tennis at Wimbledon", k=1)
        assert got[0].id == pairs[0][0].id == "tennis"
        assert [d.id for d in await store.as_retriever(search_kwargs={"k": 1}).ainvoke("phone camera")] == ["phone"]
        await store.adelete(["tennis"])
        assert await store.aget_by_ids(["tennis"]) == []
        assert len(await store.amax_marginal_relevance_search("match", k=2, fetch_k=4)) == 2

    asyncio.run(main())


def test_bad_inputs(tmp_path):
    emb = DeterministicFakeEmbedding(size=6)
    uri = str(tmp_path / "own")
    with pytest.raises(InvalidInputError, match="give model="):
        RepspaceVectorStore(uri)
    with pytest.raises(InvalidInputError, match="not both"):
        RepspaceVectorStore(uri, emb, model=OLD)
    with pytest.raises(InvalidInputError, match="Embeddings"):
        RepspaceVectorStore(uri, embedding="minilm-l6")
    store = RepspaceVectorStore(uri, emb)
    assert not store.encodes and store.collection.slot().model == "langchain:DeterministicFakeEmbedding"
    store.add_texts(["a", "b"], [{"k": 1}, {"k": 2}], ids=["1", "2"])
    with pytest.raises(InvalidInputError, match="pass the LangChain Embeddings"):
        RepspaceVectorStore(uri)
    with pytest.raises(DimensionMismatchError):
        RepspaceVectorStore(uri, DeterministicFakeEmbedding(size=7))
    with pytest.raises(InvalidInputError, match="ids for"):
        store.add_texts(["a"], ids=["1", "2"])
    with pytest.raises(InvalidInputError, match="metadatas"):
        store.add_texts(["a"], [{}, {}])
    with pytest.raises(RepspaceError):
        store.add_texts(["a", "b"], ids=["x", "x"])  # duplicate ids in one call
    with pytest.raises(RepspaceError):
        store.similarity_search("a", k=0)
    with pytest.raises(RepspaceError):
        store.similarity_search("a", filter={"k": [1, 2]})
    with pytest.raises(RepspaceError):
        store.add_texts(["a"], [{"bad": float("nan")}])
    with pytest.raises(InvalidInputError, match="uri="):
        RepspaceVectorStore.from_texts(["a"], emb)
    assert store.add_texts([]) == [] and store.get_by_ids([]) == []
    assert [d.id for d in store.similarity_search("a", k=5, filter={"k": 2})] == ["2"]
    store.delete()
    assert store.collection.count() == 0


@pytest.mark.real
def test_foreign_embedding_on_encoding_collection_is_refused(tmp_path):
    uri = str(tmp_path / "enc")
    RepspaceVectorStore(uri, model=OLD).add_documents(DOCS[:1])
    with pytest.raises(InvalidInputError, match="encodes texts with"):
        RepspaceVectorStore(uri, embedding=DeterministicFakeEmbedding(size=50))


@pytest.mark.real
def test_embeddings_dimensions():
    e = RepspaceEmbeddings(OLD, dimensions=8)
    v = e.embed_documents(["a match", "a bank"])
    assert len(v) == 2 and len(v[0]) == 8 and abs(sum(x * x for x in v[0]) - 1) < 1e-4
    full = RepspaceEmbeddings(OLD)
    assert len(full.embed_query("x")) == 50 and e.embed_documents([]) == []
    ref = truncate_normalize([full.embed_query("a match")], 8)[0]
    assert max(abs(a - b) for a, b in zip(ref, v[0])) < 1e-5
    with pytest.raises(RepspaceError):
        RepspaceEmbeddings(OLD, dimensions=51)
    with pytest.raises(RepspaceError):
        RepspaceEmbeddings("no-such-model")
    # a truncated repspace embedding is a bring-your-own slot, never the model's own slot
    import tempfile

    store = RepspaceVectorStore(tempfile.mkdtemp() + "/t", embedding=e)
    assert not store.encodes and store.collection.slot().dim == 8
    store.add_documents(DOCS)
    assert store.similarity_search("bank shares", k=1)[0].id in {"shares", "oil"}


@pytest.mark.real
def test_upgrade_is_served_through_fused_without_app_change(new_uri):
    """Application code written once (store + retriever); an upgrade starts underneath it."""
    from repspace.collections import Collection
    from repspace.collections import upgrade as up
    from repspace.datasets import load_dataset

    items = load_dataset("bbc-news:text@test")
    items = items.subset(range(0, len(items), 9))  # 117 articles, every label
    uri = new_uri()
    # --- the application
    store = RepspaceVectorStore(uri, model=OLD)
    store.add_documents([Document(id=i, page_content=t, metadata={"label": str(lab)})
                         for i, t, lab in zip(items.ids, items.data, items.labels)])
    retriever = store.as_retriever(search_kwargs={"k": 5})
    question = "oil prices and the economy"
    old_ids = [d.id for d in retriever.invoke(question)]
    # --- the operator starts an upgrade (another process would do the same through the CLI)
    st = up.start(Collection.open(uri), NEW, sample=40)
    assert st["state"] == "open"
    c = Collection.open(uri)
    fused = c.search(texts=[question], k=5, strategy="fused")[0]
    old = c.search(texts=[question], k=5, strategy="old")[0]
    assert [h["id"] for h in old] == old_ids and [h["id"] for h in fused] != old_ids  # the upgrade changes the ranking
    # --- the application, unchanged, now gets the fused ranking and its scores
    pairs = store.similarity_search_with_score(question, k=5)
    assert [(d.id, round(s, 5)) for d, s in pairs] == [(h["id"], round(h["score"], 5)) for h in fused]
    assert [d.id for d in retriever.invoke(question)] == [h["id"] for h in fused]
    flt = store.similarity_search(question, k=3, filter={"label": "business"})
    assert flt and all(d.metadata["label"] == "business" for d in flt)
    # writes during the upgrade fill both slots (the collection encodes)
    store.add_documents([Document(id="late", page_content="Oil and gas prices hit the economy again.")])
    assert c.get(["late"], vectors=True, slot=NEW)[0]["vector"] is not None
    # a store opened during the upgrade, with the app's original arguments, behaves the same
    reopened = RepspaceVectorStore(uri, model=OLD)
    assert [d.id for d in reopened.similarity_search(question, k=5)] == [d.id for d, _ in
                                                                         store.similarity_search_with_score(question, k=5)]
    # after backfill + switch the same retriever searches the new model
    up.backfill(c, batch_size=64)
    up.switch(c, force=True)
    new = c.search(texts=[question], k=5)[0]
    assert c.info()["active"] == NEW and c.info()["upgrade"] is not None
    assert [d.id for d in retriever.invoke(question)] == [h["id"] for h in new]
    up.finish(c)
    assert [d.id for d in retriever.invoke(question)] == [h["id"] for h in c.search(texts=[question], k=5)[0]]


@pytest.mark.real
def test_embeddings_without_the_service_module(monkeypatch):
    """Where repspace.service is absent, the embeddings fall back to prefix truncation (same vectors)."""
    with_service = RepspaceEmbeddings(OLD, dimensions=8).embed_documents(["a match", "a bank"])
    monkeypatch.setitem(sys.modules, "repspace.service.embeddings", None)  # import now raises ImportError
    e = RepspaceEmbeddings(OLD, dimensions=8)
    assert type(e._model).__name__ == "_TruncatingModel"
    local = e.embed_documents(["a match", "a bank"])
    assert max(abs(a - b) for u, v in zip(local, with_service) for a, b in zip(u, v)) < 1e-5
    with pytest.raises(RepspaceError):
        RepspaceEmbeddings(OLD, adaptor="some-dir")
    with pytest.raises(RepspaceError):
        RepspaceEmbeddings(OLD, dimensions=0)


@pytest.mark.real
def test_embeddings_use_a_registered_adaptor(tmp_path):
    """`dimensions` served by a nested-prefix adaptor where it was fitted for it (as in `repspace serve`)."""
    import numpy as np

    from repspace.compress import PCACompressor

    full = RepspaceEmbeddings(OLD)
    texts = [d.page_content for d in DOCS] * 4
    X = np.asarray(full.embed_documents(texts), np.float32) + np.random.default_rng(0).normal(0, .01, (20, 50))
    comp = PCACompressor(dims=[4]).fit(X.astype(np.float32))
    comp.save(tmp_path / "pca")
    e = RepspaceEmbeddings(OLD, dimensions=4, adaptor=tmp_path / "pca")
    assert e.dimensions_method == "adaptor"
    ref = comp.transform(np.asarray([full.embed_query("a match")], np.float32), 4)
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(e.embed_query("a match"), ref[0], atol=1e-5)
    assert RepspaceEmbeddings(OLD, dimensions=3, adaptor=tmp_path / "pca").dimensions_method == "truncate"

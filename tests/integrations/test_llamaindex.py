"""LlamaIndex: a retrieval round trip through VectorStoreIndex over a repspace collection (both backends,
the collection encoding or bring-your-own vectors), metadata filters, delete by ref doc id, bad queries."""

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Document, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.vector_stores.types import (ExactMatchFilter, FilterCondition, FilterOperator,  # noqa: E402
                                                  MetadataFilter, MetadataFilters, VectorStoreQuery,
                                                  VectorStoreQueryMode)

from repspace.errors import InvalidInputError  # noqa: E402
from repspace.integrations.llamaindex import RepspaceEmbedding, RepspaceVectorStore  # noqa: E402

pytestmark = pytest.mark.real
MODEL = "glove-50"

TEXTS = {
    "football": ("The football club won the league after a late goal in the final match of the season.", "sport"),
    "tennis": ("The tennis champion lost the final set at Wimbledon in a long match.", "sport"),
    "oil": ("Oil prices rose as the economy slowed and the central bank raised interest rates.", "business"),
    "shares": ("Shares of the bank fell after profits dropped and investors sold stock.", "business"),
    "phone": ("The new mobile phone has a faster chip, a better camera and software updates.", "tech"),
    "internet": ("Broadband internet users download music and video from websites and computers.", "tech"),
}


@pytest.fixture(scope="module")
def embed_model():
    return RepspaceEmbedding(MODEL)


def _docs():
    return [Document(text=t, doc_id=name, metadata={"label": label, "n": k})
            for k, (name, (t, label)) in enumerate(TEXTS.items())]


@pytest.mark.parametrize("mode", ["encodes", "own-vectors"])
def test_round_trip(new_uri, embed_model, mode):
    uri = new_uri()
    store = RepspaceVectorStore(uri, model=MODEL) if mode == "encodes" else RepspaceVectorStore(uri)
    assert store.is_embedding_query == (mode != "encodes")
    VectorStoreIndex.from_documents(_docs(), storage_context=StorageContext.from_defaults(vector_store=store),
                                    embed_model=embed_model)
    assert store.collection.count() == len(TEXTS)
    # a new process would open the same collection: from_vector_store over a freshly opened store
    again = RepspaceVectorStore(uri)
    assert again.is_embedding_query == (mode != "encodes")
    index = VectorStoreIndex.from_vector_store(again, embed_model=embed_model)
    got = index.as_retriever(similarity_top_k=2).retrieve("stock market profits and the bank")
    assert got[0].node.ref_doc_id == "shares" and got[0].node.metadata == {"label": "business", "n": 3}
    assert got[0].node.get_content() == TEXTS["shares"][0] and got[0].score > got[1].score
    # metadata filters (ExactMatchFilter and MetadataFilter ==, AND), on any metadata key
    flt = MetadataFilters(filters=[ExactMatchFilter(key="label", value="tech")])
    got = index.as_retriever(similarity_top_k=5, filters=flt).retrieve("a goal in the football match")
    assert {n.node.ref_doc_id for n in got} == {"phone", "internet"}
    flt = MetadataFilters(filters=[MetadataFilter(key="label", value="sport", operator=FilterOperator.EQ),
                                   MetadataFilter(key="n", value=1)], condition=FilterCondition.AND)
    got = index.as_retriever(similarity_top_k=5, filters=flt).retrieve("football")
    assert [n.node.ref_doc_id for n in got] == ["tennis"]
    # delete by ref doc id removes that document's nodes only
    index.delete_ref_doc("football")
    assert again.collection.count() == len(TEXTS) - 1
    got = index.as_retriever(similarity_top_k=6).retrieve("the football club won the league")
    assert "football" not in {n.node.ref_doc_id for n in got} and len(got) == len(TEXTS) - 1
    again.delete("no-such-doc")
    assert again.collection.count() == len(TEXTS) - 1
    # nodes come back whole
    nodes = again.get_nodes([got[0].node.node_id])
    assert nodes[0].node_id == got[0].node.node_id and nodes[0].get_content() == got[0].node.get_content()
    again.clear()
    assert again.collection.count() == 0


def test_unsupported_queries_are_clear(tmp_path, embed_model):
    store = RepspaceVectorStore(str(tmp_path / "c"), model=MODEL)
    VectorStoreIndex.from_documents(_docs()[:2], storage_context=StorageContext.from_defaults(vector_store=store),
                                    embed_model=embed_model)
    q = embed_model.get_query_embedding("football")
    for flt in (MetadataFilters(filters=[MetadataFilter(key="n", value=1, operator=FilterOperator.GT)]),
                MetadataFilters(filters=[ExactMatchFilter(key="label", value="sport"),
                                         ExactMatchFilter(key="n", value=1)], condition=FilterCondition.OR),
                MetadataFilters(filters=[MetadataFilters(filters=[ExactMatchFilter(key="n", value=1)])])):
        with pytest.raises(InvalidInputError):
            store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=2, filters=flt))
    with pytest.raises(InvalidInputError, match="mode"):
        store.query(VectorStoreQuery(query_embedding=q, mode=VectorStoreQueryMode.MMR))
    with pytest.raises(InvalidInputError, match="node_ids"):
        store.query(VectorStoreQuery(query_embedding=q, node_ids=["x"]))
    # by vector works on an encoding collection too (the active slot's model)
    res = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=1))
    assert res.ids and res.nodes[0].ref_doc_id == "football"


def test_embedding_dimensions(embed_model):
    small = RepspaceEmbedding(MODEL, dimensions=16)
    v = small.get_text_embedding("a football match")
    assert len(v) == 16 and abs(sum(x * x for x in v) - 1) < 1e-4
    full = embed_model.get_text_embedding("a football match")
    assert len(full) == 50
    with pytest.raises(Exception):
        RepspaceEmbedding(MODEL, dimensions=51)


def test_upgrade_is_served_through_fused(tmp_path, embed_model):
    from repspace.collections import Collection
    from repspace.collections import upgrade as up
    from repspace.datasets import load_dataset

    items = load_dataset("bbc-news:text@test")
    items = items.subset(range(0, len(items), 9))
    uri = str(tmp_path / "bbc")
    store = RepspaceVectorStore(uri, model=MODEL)
    docs = [Document(text=t, doc_id=i, metadata={"label": str(lab)}) for i, t, lab in zip(items.ids, items.data, items.labels)]
    index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store),
                                            embed_model=embed_model)
    retriever = index.as_retriever(similarity_top_k=5)
    q = "oil prices and the economy"
    up.start(Collection.open(uri), "minilm-l3-onnx", sample=40)
    fused = Collection.open(uri).search(texts=[q], k=5, strategy="fused")[0]
    got = retriever.retrieve(q)
    assert [h.node.node_id for h in got] == [h["id"] for h in fused]
    assert [round(h.score, 5) for h in got] == [round(h["score"], 5) for h in fused]

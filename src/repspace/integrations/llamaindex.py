"""A repspace collection as a LlamaIndex vector store, and repspace encoders as a LlamaIndex embedding.

    from llama_index.core import StorageContext, VectorStoreIndex
    from repspace.integrations.llamaindex import RepspaceEmbedding, RepspaceVectorStore

    store = RepspaceVectorStore("./docs-collection", model="minilm-l6")      # the collection encodes
    index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store),
                                            embed_model=RepspaceEmbedding("minilm-l6"))
    index = VectorStoreIndex.from_vector_store(store, embed_model=RepspaceEmbedding("minilm-l6"))  # later
    index.as_retriever(similarity_top_k=4, filters=MetadataFilters(filters=[ExactMatchFilter(key="label", value="tech")]))
    index.delete_ref_doc(doc_id)                                             # every node of that document

Items: the item id is the node id, the item text the node's text, and the payload LlamaIndex's own node
record (`node_to_metadata_dict`: the node's metadata keys at top level, `ref_doc_id`, and the node JSON
without its text), so a query gives back the nodes that were added.

Vectors: with `model=` (a repspace model; or a collection whose active slot is one) the collection encodes
node texts and query strings itself — during a model upgrade queries go through the upgrade's default
strategy (fused) with no change in the application; the vectors LlamaIndex computed are not used then.
Without a model the store keeps the nodes' own embeddings (bring-your-own): a missing collection is created
at the first `add`, with the dimension of the first node's embedding, in a slot named `external_model`.

Filters: `MetadataFilters` of `MetadataFilter`/`ExactMatchFilter` with operator `==`, combined with AND
(both backends push them down). Other operators, OR, nested filters and other query modes raise
`InvalidInputError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence

import numpy as np
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import BaseNode, MetadataMode
from llama_index.core.vector_stores.types import (BasePydanticVectorStore, FilterCondition, FilterOperator,
                                                  MetadataFilter, MetadataFilters, VectorStoreQuery,
                                                  VectorStoreQueryMode, VectorStoreQueryResult)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from repspace.errors import InvalidInputError

__all__ = ["RepspaceEmbedding", "RepspaceVectorStore", "filters_to_dict"]


class RepspaceEmbedding(BaseEmbedding):
    """A LlamaIndex embedding over a repspace encoder; `dimensions` as in `repspace serve` (registered
    nested-prefix `adaptor` for that dimension, else prefix truncation; unit length either way)."""

    dimensions: Optional[int] = Field(default=None, description="output dimension (adaptor or truncation)")
    adaptor: Optional[str] = Field(default=None, description="directory of a nested-prefix compressor")
    device: str = Field(default="cpu")
    _model: Any = PrivateAttr()

    def __init__(self, model_name: str = "minilm-l6", dimensions: Optional[int] = None, *,
                 adaptor: Optional[str] = None, device: str = "cpu", **kwargs: Any) -> None:
        super().__init__(model_name=str(model_name), dimensions=dimensions,
                         adaptor=None if adaptor is None else str(adaptor), device=device, **kwargs)
        from repspace.integrations._encoders import load_model

        self._model = load_model(self.model_name, adaptor=adaptor, device=device,
                                 micro_batch=min(self.embed_batch_size, 64))
        self._model.dimensions_method(dimensions)  # fails early on an impossible value

    @classmethod
    def class_name(cls) -> str:
        return "RepspaceEmbedding"

    def _embed(self, texts: List[str]) -> List[List[float]]:
        if not texts:
            return []
        X, _ = self._model.reduce(self._model.encode(texts), self.dimensions)
        return X.tolist()

    def _get_query_embedding(self, query: str) -> List[float]:
        return self._embed([query])[0]

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> List[float]:
        return self._embed([text])[0]

    def _get_text_embeddings(self, texts: List[str]) -> List[List[float]]:
        return self._embed(list(texts))


def filters_to_dict(filters: Optional[MetadataFilters]) -> dict[str, Any]:
    """LlamaIndex filters -> a repspace equality filter; anything else raises InvalidInputError."""
    if filters is None or not filters.filters:
        return {}
    if filters.condition not in (None, FilterCondition.AND) and len(filters.filters) > 1:
        raise InvalidInputError(f"repspace collections filter with AND of equalities; condition "
                                f"{getattr(filters.condition, 'value', filters.condition)!r} is not supported")
    out: dict[str, Any] = {}
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            raise InvalidInputError("nested MetadataFilters are not supported: give one flat AND of equalities")
        if not isinstance(f, MetadataFilter):
            raise InvalidInputError(f"unsupported filter {f!r}")
        if f.operator != FilterOperator.EQ:
            raise InvalidInputError(f"filter operator {f.operator.value!r} on {f.key!r} is not supported: repspace "
                                    "collections filter on metadata equality (FilterOperator.EQ / ExactMatchFilter)")
        if isinstance(f.value, list):
            raise InvalidInputError(f"filter value for {f.key!r} must be a scalar for an equality, got a list")
        if f.key in out and out[f.key] != f.value:
            raise InvalidInputError(f"two different equalities on {f.key!r} can never match together")
        out[f.key] = f.value
    return out


class RepspaceVectorStore(BasePydanticVectorStore):
    """A repspace collection (LanceDB directory or `postgresql://…?collection=NAME`) as a LlamaIndex store."""

    stores_text: bool = True
    flat_metadata: bool = False
    uri: str
    model: Optional[str] = None
    spec: str = "Flat"
    external_model: str = "llamaindex"
    device: str = "cpu"
    _collection: Any = PrivateAttr(default=None)
    _uri: str = PrivateAttr(default="")

    def __init__(self, uri: str | Path, model: Optional[str] = None, *, spec: str = "Flat",
                 external_model: str = "llamaindex", device: str = "cpu", **kwargs: Any) -> None:
        from repspace.collections import Collection
        from repspace.collections.uri import parse_uri

        parsed = parse_uri(uri)
        # the public field (repr, to_dict) is the URI with any password replaced by ***
        super().__init__(uri=str(parsed), model=model, spec=spec, external_model=external_model, device=device,
                         **kwargs)
        self._uri = str(uri)
        self._collection = Collection.open_if_exists(self._uri, device)
        if self._collection is None:
            if model is not None:
                self._collection = Collection.create(self._uri, model=model, spec=spec, device=device)
        self.is_embedding_query = not self._encodes()

    @classmethod
    def class_name(cls) -> str:
        return "RepspaceVectorStore"

    @property
    def client(self) -> Any:
        """The `repspace.collections.Collection` (None until a bring-your-own collection's first add)."""
        return self._collection

    @property
    def collection(self) -> Any:
        return self._collection

    def _encodes(self) -> bool:
        c = self._collection
        if c is None:
            return False
        c.reload()
        return c.slot().encodes

    # ------------------------------------------------------------ writes
    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> List[str]:
        nodes = list(nodes)
        if not nodes:
            return []
        ids = [n.node_id for n in nodes]
        texts = [n.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        payloads = [node_to_metadata_dict(n, remove_text=True, flat_metadata=self.flat_metadata) for n in nodes]
        if self._encodes():
            self._collection.upsert(ids, texts=texts, payloads=payloads)
            return ids
        missing = [n.node_id for n in nodes if n.embedding is None]
        if missing:
            raise InvalidInputError(f"{len(missing)} nodes have no embedding (e.g. {missing[0]!r}) and collection "
                                    "does not encode: set an embed_model, or create the store with model=")
        vectors = np.asarray([n.embedding for n in nodes], np.float32)
        if self._collection is None:
            from repspace.collections import Collection

            self._collection = Collection.create(self._uri, model=self.external_model, spec=self.spec,
                                                 dim=int(vectors.shape[1]), device=self.device)
        self._collection.upsert(ids, texts=texts, vectors=vectors, payloads=payloads)
        return ids

    def _ids_where(self, key: str, value: str) -> List[str]:
        return self._collection.ids(filter={key: value})

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document `ref_doc_id`."""
        if self._collection is None:
            return
        ids = self._ids_where("ref_doc_id", ref_doc_id)
        if ids:
            self._collection.delete(ids)

    def delete_nodes(self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None,
                     **delete_kwargs: Any) -> None:
        if self._collection is None:
            return
        if filters is not None and filters.filters:
            raise InvalidInputError("delete_nodes takes node_ids; deleting by filters is not supported")
        if node_ids:
            self._collection.delete(list(node_ids))

    def clear(self) -> None:
        if self._collection is None:
            return
        ids = self._collection.ids()
        if ids:
            self._collection.delete(ids)

    # ------------------------------------------------------------- reads
    def _nodes(self, ids: List[str]) -> dict[str, BaseNode]:
        out = {}
        for r in self._collection.get(ids):
            node = metadata_dict_to_node(r["payload"], text=r["text"] or "")
            out[r["id"]] = node
        return out

    def get_nodes(self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None
                  ) -> List[BaseNode]:
        if self._collection is None:
            return []
        if filters is not None and filters.filters:
            raise InvalidInputError("get_nodes takes node_ids; getting by filters is not supported")
        if node_ids is None:
            node_ids = self._collection.ids()
        nodes = self._nodes(list(node_ids))
        return [nodes[i] for i in node_ids if i in nodes]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        if query.mode != VectorStoreQueryMode.DEFAULT:
            raise InvalidInputError(f"query mode {query.mode.value!r} is not supported: repspace collections "
                                    "answer dense (default) queries")
        if query.doc_ids or query.node_ids:
            raise InvalidInputError("doc_ids / node_ids restrictions are not supported; filter on metadata "
                                    "(e.g. ExactMatchFilter(key='ref_doc_id', value=...)) instead")
        if self._collection is None:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        k = int(query.similarity_top_k)
        flt = filters_to_dict(query.filters)
        if self._encodes() and query.query_str:
            hits = self._collection.search(texts=[query.query_str], k=k, filter=flt)[0]
        elif query.query_embedding is not None:
            hits = self._collection.search(vectors=[query.query_embedding], k=k, filter=flt)[0]
        else:
            raise InvalidInputError("the query needs a query_embedding (or a query_str when the collection encodes)")
        nodes = self._nodes([h["id"] for h in hits])
        hits = [h for h in hits if h["id"] in nodes]
        return VectorStoreQueryResult(nodes=[nodes[h["id"]] for h in hits],
                                      similarities=[float(h["score"]) for h in hits], ids=[h["id"] for h in hits])

    def close(self) -> None:
        if self._collection is not None:
            self._collection.close()
